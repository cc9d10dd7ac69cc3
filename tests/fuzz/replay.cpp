// Runs the fuzz target without libFuzzer: over every file of the seed corpus, then over seeded
// random inputs. A regression test that any compiler builds (the default g++ build included); the
// asan preset runs it under AddressSanitizer and UBSan.
//
//   pushpoll_ring_fuzz_replay <corpus dir> [random inputs]
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s <corpus dir> [random inputs]\n", argv[0]);
    return 2;
  }
  std::size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(argv[1])) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
    ++files;
  }
  const long random_inputs = argc > 2 ? std::strtol(argv[2], nullptr, 10) : 2000;
  std::mt19937_64 rng(1);
  std::vector<std::uint8_t> bytes;
  for (long n = 0; n < random_inputs; ++n) {
    bytes.resize(rng() % 1024);
    for (auto& b : bytes) b = static_cast<std::uint8_t>(rng());
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
  }
  std::printf("replayed %zu corpus files and %ld random inputs\n", files, random_inputs);
  return 0;
}
