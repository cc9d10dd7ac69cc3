// Other processes read a hub's topics through a read-only mapping (pushpoll/remote.hpp). Real
// processes: the hub lives in the test process, readers in forked children that report through
// their exit codes; the other-user cases run setuid children (skipped unless run as root).
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <pushpoll/io/shared_memory.hpp>
#include <pushpoll/remote.hpp>

#include <cerrno>
#include <filesystem>
#include <cstdio>
#include <limits>
#include <mutex>
#include <set>

#include "wake_test_support.hpp"

namespace pushpoll::test {
namespace {

constexpr uid_t kNobody = 65534;

/// The names in a directory that contain `part`.
std::set<std::string> listing(const std::string& dir, std::string_view part = "") {
  std::set<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.find(part) != std::string::npos) out.insert(name);
  }
  return out;
}

/// Whether `fd` is a topic region's memfd.
bool region_descriptor(int fd) {
  std::error_code ec;
  const auto target = std::filesystem::read_symlink("/proc/self/fd/" + std::to_string(fd), ec).string();
  return !ec && target.find("pushpoll-topic") != std::string::npos;
}

/// Kills and reaps a child process when the test leaves, whatever happened (a failed assertion, an
/// exception), so that no child outlives its test spinning.
class Reaper {
 public:
  explicit Reaper(pid_t pid) noexcept : pid_(pid) {}
  Reaper(const Reaper&) = delete;
  Reaper& operator=(const Reaper&) = delete;
  ~Reaper() { kill(); }
  void kill() noexcept {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_;
};

/// A pipe a child waits on until the parent says go (one byte), so that both sides order their steps.
class Gate {
 public:
  Gate() {
    if (::pipe2(fds_, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
  }
  ~Gate() {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  void open() const {
    const char c = 1;
    (void)!::write(fds_[1], &c, 1);
  }
  /// In the child: blocks until opened.
  void pass() const {
    char c = 0;
    (void)!::read(fds_[0], &c, 1);
  }

 private:
  int fds_[2] = {-1, -1};
};

/// Waits for a child of start_child() and expects it to have exited with 0. Generous: these
/// children move tens of thousands of messages through a 4 KiB ring on a loaded machine.
void expect_exited_ok(pid_t pid) {
  const ChildEnd end = wait_child(pid, 60s);
  EXPECT_TRUE(end.exited(0)) << "child " << pid << ": code " << end.code << ", signal " << end.signal;
}

class CrossProcess : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pushpoll-remote-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    // Other users must reach the socket inside; SO_PEERCRED decides who is admitted.
    ::chmod(dir_.c_str(), 0755);
    path_ = dir_ + "/hub.sock";
    HubOptions ho;
    ho.memory = memory_;
    hub_.emplace(ho);
  }
  void TearDown() override {
    hub_.reset();
    std::filesystem::remove_all(dir_);
  }
  Topic& topic(const TopicOptions& o = {}) { return hub_->topic("trades", o); }

  std::shared_ptr<io::SharedMemory> memory_ = std::make_shared<io::SharedMemory>();
  std::optional<Hub> hub_;
  std::string dir_, path_;
};

/// In a child: takes a batch of messages from several producers, each a word (producer << 32 | n):
/// every producer's n must come in order from 0, exactly once, with no gap, and the batch intact.
/// Counts the messages into `total`; false at the first fault.
bool take_in_producer_order(Batch& b, std::span<std::uint64_t> next, std::uint64_t& total) {
  bool ok = b.gap() == 0;
  for (const Message& m : b) {
    const std::uint64_t w = word_of(m), p = w >> 32;
    if (p >= next.size() || (w & 0xffffffffu) != next[p]) {
      ok = false;
      continue;
    }
    ++next[p];
    ++total;
  }
  return b.release() && ok;
}

/// In a child: reads `count` messages of topic "trades" at `path` from the oldest, each carrying its
/// own seq as payload; exit code 0 if all came once, in order, intact, and read in place.
int read_all(const std::string& path, std::uint64_t count) {
  pushpoll::Remote remote = pushpoll::connect(path);
  Topic& t = remote.topic("trades");
  Subscriber sub = t.subscribe(Start::oldest);
  std::uint64_t next = 0;
  for (int spins = 0; next < count && spins < 20'000'000; ++spins) {
    Batch b = sub.poll(256);
    if (b.gap() != 0) return 10;
    for (const Message& m : b) {
      if (m.seq != next || m.data.size() != sizeof(std::uint64_t) || word_of(m) != next) return 11;
      if (!inside_ring(t, m.data)) return 12;  // a copy, not the mapping
      ++next;
    }
    if (!b.release()) return 13;
  }
  return next == count ? 0 : 14;
}

TEST_F(CrossProcess, AnotherProcessReadsEveryMessageInPlaceWhilePublished) {
  Topic& t = topic();
  Server server = hub_->serve(path_);  // the member form of pushpoll::serve(hub, path)
  for (std::uint64_t i = 0; i < 500; ++i) t.publish(bytes_of(i));
  Gate go;
  const auto in_child = [&] {
    go.pass();
    return read_all(path_, 5000);
  };
  // Started once the child exists (see run_child()).
  const auto publisher = [&] {
    go.open();
    for (std::uint64_t i = 500; i < 5000; ++i) t.publish(bytes_of(i));
  };
  const ChildEnd end = run_child(in_child, 20s, publisher);
  EXPECT_TRUE(end.exited(0)) << "code " << end.code << " signal " << end.signal;
  EXPECT_EQ(server.admitted(), 1u);
}

TEST_F(CrossProcess, AStoreThroughAMessageKillsTheReaderWithSigsegv) {
  Topic& t = topic();
  Server server = serve(*hub_, path_);
  t.publish(bytes_of(std::uint64_t{7}));
  const ChildEnd end = run_child([&] {
    pushpoll::Remote remote = pushpoll::connect(path_);
    Subscriber sub = remote.topic("trades").subscribe(Start::oldest);
    Batch b = sub.poll();
    for (const Message& m : b) *const_cast<std::byte*>(m.data.data()) = std::byte{0};
    return 0;  // the store went through: a writable mapping
  });
  if (kSanitizerCatchesSegv) {
    // The sanitizer reports the fault and exits with an error: the store did not go through.
    EXPECT_TRUE(end.signal == SIGSEGV || (end.signal == 0 && end.code > 0)) << "code " << end.code;
  } else {
    EXPECT_EQ(end.signal, SIGSEGV) << "code " << end.code;
  }
  // And the owner's bytes are untouched.
  Subscriber sub = t.subscribe(Start::oldest);
  Batch b = sub.poll();
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(word_of(*b.begin()), 7u);
}

TEST_F(CrossProcess, TheMappingCannotBeMadeWritable) {
  Topic& t = topic();
  Server server = serve(*hub_, path_);
  t.publish(bytes_of(std::uint64_t{7}));
  const ChildEnd end = run_child([&] {
    // This child is a fork of the owner and inherited its regions' descriptors: a reader elsewhere
    // has none. Drop them, then see that connecting leaves none either.
    for (int fd = 3; fd < 1024; ++fd) {
      if (region_descriptor(fd)) ::close(fd);
    }
    pushpoll::Remote remote = pushpoll::connect(path_);
    Subscriber sub = remote.topic("trades").subscribe(Start::oldest);
    Batch b = sub.poll();
    const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
    void* at = reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(b.begin().operator*().data.data()) & ~(page - 1));
    if (::mprotect(at, page, PROT_READ | PROT_WRITE) == 0) return 20;
    // No descriptor of the region is left open in this process to map again.
    for (int fd = 3; fd < 1024; ++fd) {
      if (region_descriptor(fd)) return 21;
    }
    return 0;
  });
  EXPECT_TRUE(end.exited(0)) << "code " << end.code << " signal " << end.signal;
}

TEST_F(CrossProcess, TheRegionsDescriptorRefusesWritableMappingsAndWrites) {
  Topic& t = topic();
  const int fd = memory_->descriptor(t.region());
  ASSERT_GE(fd, 0);
  EXPECT_EQ(::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), MAP_FAILED);
  EXPECT_EQ(errno, EPERM);
  const char c = 1;
  EXPECT_EQ(::pwrite(fd, &c, 1, 0), -1);
  EXPECT_EQ(::ftruncate(fd, 0), -1);
  void* ro = ::mmap(nullptr, 4096, PROT_READ, MAP_SHARED, fd, 0);
  ASSERT_NE(ro, MAP_FAILED);
  EXPECT_NE(::mprotect(ro, 4096, PROT_READ | PROT_WRITE), 0);
  ::munmap(ro, 4096);
  // The owner's own mapping stays writable: it publishes.
  t.publish(bytes_of(std::uint64_t{1}));
  EXPECT_EQ(t.head(), 1u);
}

TEST_F(CrossProcess, AUserNotAllowListedIsRefusedAndAnAllowListedOneAdmitted) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a child as another user";
  Topic& t = topic();
  t.publish(bytes_of(std::uint64_t{0}));
  {
    // The socket's mode lets everyone connect (someone is allow-listed); the credentials refuse.
    ServeOptions others;
    others.subscriber_uids = {4242};
    Server server = serve(*hub_, path_, others);
    const ChildEnd end = run_child([&] {
      if (::setgid(kNobody) != 0 || ::setuid(kNobody) != 0) return 30;
      try {
        (void)pushpoll::connect(path_);
      } catch (const Refused& e) {
        return std::string(e.what()).find("65534") != std::string::npos ? 0 : 31;
      }
      return 32;
    });
    EXPECT_TRUE(end.exited(0)) << "code " << end.code << " signal " << end.signal;
    EXPECT_EQ(server.refused(), 1u);
    EXPECT_EQ(server.admitted(), 0u);
  }
  {
    // Nobody else allow-listed: the socket's mode keeps others out, which is a refusal too.
    Server server = serve(*hub_, path_);
    const ChildEnd end = run_child([&] {
      if (::setgid(kNobody) != 0 || ::setuid(kNobody) != 0) return 30;
      try {
        (void)pushpoll::connect(path_);
      } catch (const Refused&) {
        return 0;
      }
      return 33;
    });
    EXPECT_TRUE(end.exited(0)) << "code " << end.code << " signal " << end.signal;
  }
  ServeOptions so;
  so.subscriber_uids = {kNobody};
  Server server = serve(*hub_, path_, so);
  struct stat st{};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0666u) << "allow-listed users must be able to connect";
  const ChildEnd end = run_child([&] {
    if (::setgid(kNobody) != 0 || ::setuid(kNobody) != 0) return 30;
    return read_all(path_, 1);
  });
  EXPECT_TRUE(end.exited(0)) << "code " << end.code << " signal " << end.signal;
}

TEST_F(CrossProcess, AGroupOnTheAllowListIsAdmitted) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a child as another user";
  topic().publish(bytes_of(std::uint64_t{0}));
  ServeOptions so;
  so.subscriber_gids = {4242};
  Server server = serve(*hub_, path_, so);
  const ChildEnd end = run_child([&] {
    if (::setgid(4242) != 0 || ::setuid(kNobody) != 0) return 30;
    return read_all(path_, 1);
  });
  EXPECT_TRUE(end.exited(0)) << "code " << end.code << " signal " << end.signal;
}

TEST_F(CrossProcess, PublishingThroughAMappedTopicIsRefused) {
  topic().publish(bytes_of(std::uint64_t{0}));
  Server server = serve(*hub_, path_);
  const ChildEnd end = run_child([&] {
    pushpoll::Remote remote = pushpoll::connect(path_);
    Topic& t = remote.topic("trades");
    int refused = 0;
    try {
      t.publish(bytes_of(std::uint64_t{1}));
    } catch (const Refused&) {
      ++refused;
    }
    try {
      (void)t.claim(8);
    } catch (const Refused&) {
      ++refused;
    }
    try {
      const std::span<const std::byte> one[] = {bytes_of(std::uint64_t{1})};
      t.publish_batch(one);
    } catch (const Refused&) {
      ++refused;
    }
    t.close();  // only the owner closes its topics
    if (t.closed()) return 41;
    return refused == 3 ? 0 : 40;
  });
  EXPECT_TRUE(end.exited(0)) << "code " << end.code << " signal " << end.signal;
  EXPECT_EQ(hub_->find("trades")->head(), 1u);
  EXPECT_FALSE(hub_->find("trades")->closed());
}

TEST_F(CrossProcess, ANameTheHubDoesNotHaveIsAnError) {
  topic();
  Server server = serve(*hub_, path_);
  pushpoll::Remote remote = pushpoll::connect(path_);
  try {
    (void)remote.topic("quotes");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'quotes'"), std::string::npos) << e.what();
  }
  // A topic created after the server started is served too, and the same name maps once.
  hub_->topic("quotes").publish(bytes_of(std::uint64_t{0}));
  Topic& q = remote.topic("quotes");
  EXPECT_EQ(&q, &remote.topic("quotes"));
  EXPECT_EQ(q.head(), 1u);
  EXPECT_TRUE(q.read_only());
}

TEST_F(CrossProcess, AHubOnTheHeapCannotBeServed) {
  Hub heap;
  try {
    Server s = serve(heap, path_);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("SharedMemory"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(path_));
}

TEST_F(CrossProcess, NothingServesThereIsAnError) {
  EXPECT_THROW((void)pushpoll::connect(path_), Error);
  EXPECT_THROW((void)pushpoll::connect(dir_ + "/" + std::string(200, 'x')), Error);
}

TEST_F(CrossProcess, TheSocketIsRemovedTakenOverWhenStaleAndNeverStolen) {
  {
    Server server = serve(*hub_, path_);
    EXPECT_TRUE(std::filesystem::exists(path_));
    // A second server on a live socket is refused, and leaves the first one serving.
    EXPECT_THROW((void)serve(*hub_, path_), Error);
    EXPECT_NO_THROW((void)pushpoll::connect(path_));
  }
  EXPECT_FALSE(std::filesystem::exists(path_)) << "the server left its socket behind";

  // An owner killed while serving leaves its socket file; the next serve() takes it over.
  Gate serving;
  const pid_t owner = ::fork();
  if (owner == 0) {
    HubOptions ho;
    ho.memory = std::make_shared<io::SharedMemory>();
    Hub hub(ho);
    Server s = serve(hub, path_);
    serving.open();
    for (;;) ::pause();
  }
  serving.pass();
  ::kill(owner, SIGKILL);
  ::waitpid(owner, nullptr, 0);
  ASSERT_TRUE(std::filesystem::exists(path_));
  Server server = serve(*hub_, path_);
  EXPECT_NO_THROW((void)pushpoll::connect(path_));

  // Something that is not a socket is never removed.
  const std::string file = dir_ + "/file";
  std::fclose(std::fopen(file.c_str(), "w"));
  EXPECT_THROW((void)serve(*hub_, file), Error);
  EXPECT_TRUE(std::filesystem::exists(file));
}

TEST_F(CrossProcess, AKilledReaderLeavesNothingBehind) {
  topic().publish(bytes_of(std::uint64_t{0}));
  Server server = serve(*hub_, path_);
  // Regions are memfds, named nowhere; the socket is the only file. (Other tests may run beside
  // this one: only names of ours count.)
  const auto shm_before = listing("/dev/shm", "pushpoll");
  Gate reading;
  const int fds_before = open_fd_count();
  const pid_t reader = ::fork();
  if (reader == 0) {
    pushpoll::Remote remote = pushpoll::connect(path_);
    Subscriber sub = remote.topic("trades").subscribe(Start::oldest);
    (void)sub.poll();
    reading.open();
    for (;;) ::pause();
  }
  reading.pass();
  ::kill(reader, SIGKILL);
  ::waitpid(reader, nullptr, 0);
  EXPECT_TRUE(eventually([&] { return open_fd_count() == fds_before; }))
      << "the server kept the dead peer's connection";
  EXPECT_EQ(listing("/dev/shm", "pushpoll"), shm_before);
  EXPECT_EQ(listing(dir_), std::set<std::string>{"hub.sock"});
  // The server goes on serving.
  EXPECT_TRUE(run_child([&] { return read_all(path_, 1); }).exited(0));
}

TEST_F(CrossProcess, AnOverwrittenReaderLearnsTheExactGap) {
  TopicOptions o = small_topic(4096, Overflow::overwrite);
  Topic& t = topic(o);
  Server server = serve(*hub_, path_);
  Gate subscribed, published;
  const auto in_child = [&] {
    pushpoll::Remote remote = pushpoll::connect(path_);
    Subscriber sub = remote.topic("trades").subscribe(Start::at(0));
    subscribed.open();
    published.pass();
    std::uint64_t seen = 0, gaps = 0, next = 0;
    for (;;) {
      Batch b = sub.poll(64);
      if (b.empty() && b.gap() == 0) break;
      gaps += b.gap();
      next += b.gap();
      for (const Message& m : b) {
        if (m.seq != next || word_of(m) != next) return 50;
        ++next;
        ++seen;
      }
      if (!b.release()) return 51;
    }
    if (gaps == 0) return 52;  // a 4 KiB ring cannot hold 2000 messages
    return seen + gaps == 2000 ? 0 : 53;
  };
  // Started once the child exists (see run_child()).
  const auto publisher = [&] {
    subscribed.pass();
    for (std::uint64_t i = 0; i < 2000; ++i) t.publish(bytes_of(i));
    published.open();
  };
  const ChildEnd end = run_child(in_child, 20s, publisher);
  EXPECT_TRUE(end.exited(0)) << "code " << end.code << " signal " << end.signal;
}

TEST_F(CrossProcess, AReaderOutlivesItsOwnerAndReadsWhatWasCommitted) {
  Gate published, done;
  const pid_t owner = ::fork();
  if (owner == 0) {
    HubOptions ho;
    ho.memory = std::make_shared<io::SharedMemory>();
    Hub hub(ho);
    Topic& t = hub.topic("trades");
    Server s = serve(hub, path_);
    for (std::uint64_t i = 0; i < 100; ++i) t.publish(bytes_of(i));
    published.open();
    for (;;) ::pause();
  }
  published.pass();
  pushpoll::Remote remote = pushpoll::connect(path_);
  Topic& t = remote.topic("trades");
  Subscriber sub = t.subscribe(Start::oldest);
  EXPECT_TRUE(remote.connected());
  ::kill(owner, SIGKILL);
  ::waitpid(owner, nullptr, 0);
  EXPECT_TRUE(eventually([&] { return !remote.connected(); }));
  std::uint64_t next = 0;
  for (Batch b = sub.poll(); !b.empty(); b = sub.poll()) {
    for (const Message& m : b) EXPECT_EQ(word_of(m), next++);
  }
  EXPECT_EQ(next, 100u);
  EXPECT_THROW((void)remote.topic("other"), Closed);
}

// ---- remote readers gate the writers ---------------------------------------------------------

/// Options of a small lossless topic: 4 KiB ring, long publish_timeout, the given stall_timeout.
TopicOptions lossless(std::chrono::milliseconds stall) {
  TopicOptions o = small_topic(4096, Overflow::block);
  o.publish_timeout = 10s;
  o.stall_timeout = stall;
  return o;
}

/// The seat page this process shares with the server: where its remote subscribers' slots are.
detail::SubscriberSlot* seat_page() {
  std::FILE* maps = std::fopen("/proc/self/maps", "r");
  char line[512];
  detail::SubscriberSlot* out = nullptr;
  while (maps != nullptr && std::fgets(line, sizeof(line), maps) != nullptr) {
    if (std::strstr(line, "pushpoll-seats") != nullptr) {
      out = reinterpret_cast<detail::SubscriberSlot*>(std::strtoull(line, nullptr, 16));
      break;
    }
  }
  if (maps != nullptr) std::fclose(maps);
  return out;
}

TEST_F(CrossProcess, FourReaderProcessesGateTheWritersAndGetEveryMessageOnce) {
  constexpr std::uint64_t kPerProducer = 20000;
  Topic& t = topic(lossless(60s));
  Server server = serve(*hub_, path_);
  Gate ready, go;
  std::vector<pid_t> readers;
  for (int r = 0; r < 4; ++r) {
    readers.push_back(start_child([&] {
      pushpoll::Remote remote = pushpoll::connect(path_);
      Subscriber sub = remote.topic("trades").subscribe(Start::oldest);
      ready.open();
      go.pass();
      std::uint64_t next[2] = {0, 0}, total = 0;
      while (total < 2 * kPerProducer) {
        Batch b = sub.poll(128);
        if (!take_in_producer_order(b, next, total)) return 61;
      }
      return 0;
    }));
  }
  for (int r = 0; r < 4; ++r) ready.pass();
  for (int r = 0; r < 4; ++r) go.open();
  std::vector<std::thread> producers;
  for (std::uint64_t p = 0; p < 2; ++p) {
    producers.emplace_back([&t, p] {
      for (std::uint64_t i = 0; i < kPerProducer; ++i) t.publish(bytes_of((p << 32) | i));
    });
  }
  for (auto& th : producers) th.join();
  for (pid_t pid : readers) expect_exited_ok(pid);
  EXPECT_EQ(t.stats().detaches, 0u);
  EXPECT_GT(t.stats().full_waits, 0u) << "a 4 KiB ring never filled: the readers did not gate";
}

TEST_F(CrossProcess, AKilledReaderStopsGatingAtOnceNotAfterStallTimeout) {
  Topic& t = topic(lossless(60s));
  Server server = serve(*hub_, path_);
  Gate ready;
  const pid_t reader = ::fork();
  if (reader == 0) {
    pushpoll::Remote remote = pushpoll::connect(path_);
    Subscriber sub = remote.topic("trades").subscribe(Start::oldest);
    ready.open();
    for (;;) ::pause();  // reads nothing: the ring fills against its cursor
  }
  ready.pass();
  std::uint64_t i = 0;
  while (t.try_publish(bytes_of(i))) ++i;
  ASSERT_GT(i, 0u);
  std::atomic<bool> done{false};
  std::thread blocked([&] {
    t.publish(bytes_of(i));
    done = true;
  });
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(done.load()) << "the publisher did not wait for the remote reader";
  const auto killed = Clock::now();
  ::kill(reader, SIGKILL);
  ::waitpid(reader, nullptr, 0);
  blocked.join();
  const auto held = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed);
  RecordProperty("held_ms", std::to_string(held.count()));
  EXPECT_LT(held, 5s) << "the dead reader was detached by stall_timeout, not by its hang-up";
  EXPECT_EQ(t.stats().detaches, 0u);
}

TEST_F(CrossProcess, AStalledReaderIsDetachedAndToldItsExactGap) {
  Topic& t = topic(lossless(200ms));
  Server server = serve(*hub_, path_);
  Gate ready, published;
  constexpr std::uint64_t kTotal = 3000;
  const auto in_child = [&] {
    pushpoll::Remote remote = pushpoll::connect(path_);
    Subscriber sub = remote.topic("trades").subscribe(Start::oldest);
    ready.open();
    published.pass();  // stalled meanwhile: a 4 KiB ring holds far fewer than kTotal
    std::uint64_t next = 0, gaps = 0;
    for (Batch b = sub.poll(); !b.empty() || b.gap() != 0; b = sub.poll()) {
      gaps += b.gap();
      next += b.gap();
      for (const Message& m : b) {
        if (m.seq != next || word_of(m) != next) return 70;
        ++next;
      }
    }
    if (gaps == 0) return 71;
    return next == kTotal ? 0 : 72;
  };
  // Started once the child exists (see run_child()).
  const auto publisher = [&] {
    ready.pass();
    for (std::uint64_t i = 0; i < kTotal; ++i) t.publish(bytes_of(i));
    published.open();
  };
  const ChildEnd end = run_child(in_child, 20s, publisher);
  EXPECT_TRUE(end.exited(0)) << "code " << end.code << " signal " << end.signal;
  EXPECT_GE(t.stats().detaches, 1u);
}

TEST_F(CrossProcess, UntrustedCursorsBehindTheOldestHoldNothingAndAreReported) {
  Topic& t = topic(lossless(200ms));
  Server server = serve(*hub_, path_);
  Gate ready, stop;
  const pid_t vandal = ::fork();
  if (vandal == 0) {
    pushpoll::Remote remote = pushpoll::connect(path_);
    Subscriber sub = remote.topic("trades").subscribe(Start::oldest);
    detail::SubscriberSlot* page = seat_page();
    if (page == nullptr) ::_exit(80);
    ready.open();
    // Scribble over its own slot: cursors behind the oldest that change all the time (a stall
    // check comparing raw values would see progress forever), re-attaching, lying about when.
    for (std::uint64_t k = 0;; ++k) {
      for (std::uint32_t i = 0; i < 4; ++i) {
        page[i].cursor_seq.store((k + i) % 3, std::memory_order_seq_cst);
        page[i].state.store(detail::kSlotAttached, std::memory_order_seq_cst);
        page[i].attached_at.store(std::numeric_limits<std::int64_t>::max(), std::memory_order_relaxed);
        page[i].stall_cursor.store(k, std::memory_order_relaxed);
      }
    }
  }
  Reaper reaper(vandal);
  ready.pass();
  // Every publish completes (no Full in publish_timeout = 10 s): once the ring moved past the
  // scribbler's cursors they hold nothing (before that it is a stalled reader, detached after
  // stall_timeout); the owner reads every message intact. 200 messages of 64 B fill a 4 KiB ring
  // three times.
  Subscriber local = t.subscribe(Start::oldest);
  std::uint64_t read = 0;
  for (std::uint64_t i = 0; i < 200; ++i) {
    t.publish(bytes_of(i));
    for (const Message& m : local.poll()) {
      EXPECT_EQ(word_of(m), read);
      ++read;
    }
  }
  reaper.kill();
  EXPECT_EQ(read, 200u);
  EXPECT_GE(t.stats().clamped_cursors, 1u) << "the clamped cursors were not reported";
}

// ---- remote readers are pushed ------------------------------------------------------------------

/// In a child: `rounds` times, reads everything, then parks in wait(); each message carries its
/// seq. Exit 0 if every message came once, in order, and no wait needed its safety net (each
/// returned well within it, and none timed out).
int park_and_read(const std::string& path, std::uint64_t count, const Gate& ready) {
  pushpoll::Remote remote = pushpoll::connect(path);
  Subscriber sub = remote.topic("trades").subscribe(Start::oldest);
  ready.open();
  std::uint64_t next = 0;
  while (next < count) {
    for (Batch b = sub.poll(); !b.empty(); b = sub.poll()) {
      for (const Message& m : b) {
        if (word_of(m) != next) return 90;
        ++next;
      }
    }
    if (next == count) break;
    const auto start = Clock::now();
    if (!sub.wait(5s)) return 91;                      // timed out: no push came
    if (Clock::now() - start > 700ms) return 92;       // the safety net found it, not a push
  }
  return 0;
}

TEST_F(CrossProcess, AParkedRemoteReaderIsPushedByEveryPublish) {
  Topic& t = topic();
  Server server = serve(*hub_, path_);
  Gate ready;
  const auto in_child = [&] { return park_and_read(path_, 200, ready); };
  // Started once the child exists (see run_child()).
  const auto publisher = [&] {
    ready.pass();
    for (std::uint64_t i = 0; i < 200; ++i) {
      t.publish(bytes_of(i));
      std::this_thread::sleep_for(1ms);  // let the reader park between most messages
    }
  };
  const ChildEnd end = run_child(in_child, 20s, publisher);
  EXPECT_TRUE(end.exited(0)) << "code " << end.code << " signal " << end.signal;
  EXPECT_GT(hub_->wake_stats().wakeups_sent, 0u);
}

TEST_F(CrossProcess, NoWakeUpIsLostWhileProducersRaceTheRemoteArming) {
  TopicOptions o;
  o.capacity = 1 << 16;
  Topic& t = topic(o);
  Server server = serve(*hub_, path_);
  constexpr std::uint64_t kTotal = 6000;
  Gate ready;
  std::mutex order;  // one publish at a time over both threads, so that each payload is its seq
  std::uint64_t next = 0;
  const auto in_child = [&] { return park_and_read(path_, kTotal, ready); };
  // Started once the child exists (see run_child()).
  const auto driver = [&] {
    ready.pass();
    std::vector<std::thread> producers;
    for (std::uint64_t p = 0; p < 2; ++p) {
      producers.emplace_back([&, p] {
        std::uint64_t x = p + 1;
        for (std::uint64_t k = 0; k < kTotal / 2; ++k) {
          {
            std::lock_guard lock(order);
            t.publish(bytes_of(next++));
          }
          x = x * 6364136223846793005u + 1442695040888963407u;  // jitter: bursts and pauses
          if ((x >> 61) == 0) std::this_thread::sleep_for(std::chrono::microseconds((x >> 32) % 300));
        }
      });
    }
    for (auto& th : producers) th.join();
  };
  const ChildEnd end = run_child(in_child, 60s, driver);
  EXPECT_TRUE(end.exited(0)) << "code " << end.code << " signal " << end.signal;
}

TEST_F(CrossProcess, APolledFdBecomesReadableAtThePushAndCloseEndsTheWait) {
  Topic& t = topic();
  Server server = serve(*hub_, path_);
  Gate ready, armed;
  const auto in_child = [&] {
    pushpoll::Remote remote = pushpoll::connect(path_);
    Subscriber sub = remote.topic("trades").subscribe(Start::oldest);
    ready.open();
    if (!sub.arm()) return 100;  // nothing published yet: it must arm
    armed.open();
    if (!readable(sub.fd(), 5s)) return 101;
    Batch b = sub.poll();
    if (b.size() != 1) return 102;
    b.release();
    try {
      for (int i = 0; i < 10; ++i) (void)sub.wait(5s);
    } catch (const Closed&) {
      return 0;
    }
    return 103;
  };
  // Started once the child exists (see run_child()).
  const auto owner = [&] {
    ready.pass();
    armed.pass();
    std::this_thread::sleep_for(20ms);
    t.publish(bytes_of(std::uint64_t{0}));
    std::this_thread::sleep_for(50ms);
    t.close();
  };
  const ChildEnd end = run_child(in_child, 20s, owner);
  EXPECT_TRUE(end.exited(0)) << "code " << end.code << " signal " << end.signal;
}

TEST_F(CrossProcess, TheOwnersDeathEndsARemoteWaitWithClosed) {
  Gate serving;
  const pid_t owner = ::fork();
  if (owner == 0) {
    HubOptions ho;
    ho.memory = std::make_shared<io::SharedMemory>();
    Hub hub(ho);
    hub.topic("trades").publish(bytes_of(std::uint64_t{0}));
    Server s = serve(hub, path_);
    serving.open();
    for (;;) ::pause();
  }
  serving.pass();
  pushpoll::Remote remote = pushpoll::connect(path_);
  Subscriber sub = remote.topic("trades").subscribe(Start::oldest);
  EXPECT_EQ(sub.poll().size(), 1u);
  std::thread killer([&] {
    std::this_thread::sleep_for(50ms);
    ::kill(owner, SIGKILL);
    ::waitpid(owner, nullptr, 0);
  });
  const auto start = Clock::now();
  EXPECT_THROW((void)sub.wait(10s), Closed);
  killer.join();
  EXPECT_LT(Clock::now() - start, 3s) << "the wait outlived its owner for more than the safety net";
}

// ---- publishing from other processes -----------------------------------------------------------

ServeOptions publishers_too() {
  ServeOptions so;
  so.publisher_uids = {::geteuid()};
  return so;
}

TEST_F(CrossProcess, AnAllowedProcessPublishesThroughTheOwner) {
  Topic& t = topic();
  Server server = serve(*hub_, path_, publishers_too());
  Subscriber local = t.subscribe(Start::oldest);
  const ChildEnd end = run_child([&] {
    pushpoll::Remote remote = pushpoll::connect(path_);
    Topic& rt = remote.topic("trades");
    for (std::uint64_t i = 0; i < 1000; ++i) {
      if (rt.publish(bytes_of(i), static_cast<unsigned>(i % 3)) != i) return 110;
    }
    const std::uint64_t a = 1000, b = 1001;
    const std::span<const std::byte> two[] = {std::as_bytes(std::span(&a, 1)), std::as_bytes(std::span(&b, 1))};
    if (rt.publish_batch(two) != 1001) return 111;
    // A claim: its seq at once, the payload written in place (memory shared with the owner only),
    // committed with a tag.
    Claim c = rt.claim(sizeof(std::uint64_t));
    if (c.seq() != 1002 || c.data().size() != sizeof(std::uint64_t)) return 112;
    const std::uint64_t v = 1002;
    std::memcpy(c.data().data(), &v, sizeof(v));
    if (c.commit(5) != 1002 || !c.data().empty()) return 113;
    {
      Claim dropped = rt.claim(8);  // dropped uncommitted: an aborted message, seq 1003
    }
    try {
      (void)rt.publish(std::vector<std::byte>(rt.max_message() + 1));
      return 114;
    } catch (const MessageTooLarge&) {
    }
    return 0;
  });
  EXPECT_TRUE(end.exited(0)) << "code " << end.code << " signal " << end.signal;
  std::uint64_t next = 0;
  for (Batch b = local.poll(); !b.empty(); b = local.poll()) {
    for (const Message& m : b) {
      if (next == 1003) {
        EXPECT_TRUE(m.aborted);
      } else {
        EXPECT_EQ(word_of(m), next);
        EXPECT_EQ(m.tag, next < 1000 ? next % 3 : next == 1002 ? 5u : 0u);
      }
      ++next;
    }
  }
  EXPECT_EQ(next, 1004u);
}

TEST_F(CrossProcess, FourReaderProcessesGetEveryMessageOnceWhileTwoProcessesAndTheOwnerPublish) {
  constexpr std::uint64_t kPer = 3000;  // per producer; three producers
  Topic& t = topic(lossless(60s));
  Server server = serve(*hub_, path_, publishers_too());
  Gate ready, go;
  std::vector<pid_t> children;
  for (int r = 0; r < 4; ++r) {
    children.push_back(start_child([&] {
      pushpoll::Remote remote = pushpoll::connect(path_);
      Subscriber sub = remote.topic("trades").subscribe(Start::oldest);
      ready.open();
      std::uint64_t next[3] = {0, 0, 0}, total = 0;
      auto progress = Clock::now();
      while (total < 3 * kPer) {
        // A wake-up is a hint: one may come for a message already read (an arming that raced a
        // round), so an empty batch is fine; five seconds without any is a lost wake-up.
        Batch b = sub.poll_wait(256, 5s);
        if (!b.empty()) progress = Clock::now();
        if (Clock::now() - progress > 5s) return 120;
        if (!take_in_producer_order(b, next, total)) return 122;
      }
      return 0;
    }));
  }
  for (int r = 0; r < 4; ++r) ready.pass();
  for (std::uint64_t p = 1; p <= 2; ++p) {
    children.push_back(start_child([&, p] {
      pushpoll::Remote remote = pushpoll::connect(path_);
      Topic& rt = remote.topic("trades");
      go.pass();
      for (std::uint64_t i = 0; i < kPer; ++i) rt.publish(bytes_of((p << 32) | i));
      return 0;
    }));
  }
  go.open();
  go.open();
  for (std::uint64_t i = 0; i < kPer; ++i) t.publish(bytes_of(i));
  for (pid_t pid : children) expect_exited_ok(pid);
  EXPECT_EQ(t.head(), 3 * kPer);
  EXPECT_EQ(t.stats().detaches, 0u);
}

TEST_F(CrossProcess, APublisherKilledBetweenClaimAndCommitHoldsTheReadersNoLonger) {
  TopicOptions o = lossless(60s);
  o.claim_timeout = 60s;  // only its death may end the claim in time
  Topic& t = topic(o);
  Server server = serve(*hub_, path_, publishers_too());
  Subscriber local = t.subscribe(Start::oldest);
  Gate claimed;
  const pid_t publisher = ::fork();
  if (publisher == 0) {
    pushpoll::Remote remote = pushpoll::connect(path_);
    Claim c = remote.topic("trades").claim(8);  // seq 0, never committed
    claimed.open();
    for (;;) ::pause();
  }
  claimed.pass();
  t.publish(bytes_of(std::uint64_t{1}));  // behind the claim: invisible while it is held
  EXPECT_TRUE(local.poll().empty());
  const auto killed = Clock::now();
  ::kill(publisher, SIGKILL);
  ::waitpid(publisher, nullptr, 0);
  // The owner drops the dead process's claim at its hang-up: an aborted message, then the rest.
  std::vector<Received> got;
  while (got.size() < 2 && Clock::now() - killed < 5s) {
    for (const Message& m : local.poll()) got.push_back(copy_of(m));
  }
  EXPECT_LT(Clock::now() - killed, 1s) << "the readers waited for claim_timeout";
  ASSERT_EQ(got.size(), 2u);
  EXPECT_TRUE(got[0].aborted);
  EXPECT_EQ(got[1].seq, 1u);
}

TEST_F(CrossProcess, ARemoteClaimHeldPastClaimTimeoutExpires) {
  TopicOptions o;
  o.claim_timeout = 50ms;
  Topic& t = topic(o);
  Server server = serve(*hub_, path_, publishers_too());
  Subscriber local = t.subscribe(Start::oldest);
  Gate claimed, expired;
  const auto in_child = [&] {
    pushpoll::Remote remote = pushpoll::connect(path_);
    Claim c = remote.topic("trades").claim(8);
    claimed.open();
    expired.pass();
    try {
      (void)c.commit();
      return 150;
    } catch (const ClaimExpired&) {
      return 0;
    }
  };
  // Started once the child exists (see run_child()).
  const auto reader = [&] {
    claimed.pass();
    t.publish(bytes_of(std::uint64_t{1}));
    // The reader is held by the claim, and expires it after claim_timeout.
    std::uint64_t seen = 0;
    for (auto start = Clock::now(); seen < 2 && Clock::now() - start < 5s;) seen += local.poll().size();
    EXPECT_EQ(seen, 2u);
    expired.open();
  };
  const ChildEnd end = run_child(in_child, 20s, reader);
  EXPECT_TRUE(end.exited(0)) << "code " << end.code << " signal " << end.signal;
  EXPECT_EQ(t.stats().expired, 1u);
}

TEST_F(CrossProcess, AKilledPublisherCostsTheReadersNothing) {
  Topic& t = topic(lossless(60s));
  Server server = serve(*hub_, path_, publishers_too());
  Subscriber local = t.subscribe(Start::oldest);
  Gate publishing;
  const pid_t publisher = ::fork();
  if (publisher == 0) {
    pushpoll::Remote remote = pushpoll::connect(path_);
    Topic& rt = remote.topic("trades");
    rt.publish(bytes_of(std::uint64_t{0}));
    publishing.open();
    for (std::uint64_t i = 1;; ++i) rt.publish(bytes_of(i));  // the ring fills: it waits, pending
  }
  publishing.pass();
  ::kill(publisher, SIGKILL);
  ::waitpid(publisher, nullptr, 0);
  // Whatever it had sent went out whole or not at all (a message it sent before dying may still go
  // out after its death, whole); the readers and the owner go on at once.
  constexpr std::uint64_t kOwner = std::uint64_t{1} << 40;
  std::uint64_t next = 0, mine = 0;
  const auto take = [&](const Message& m) {
    const std::uint64_t w = word_of(m);
    if (w >= kOwner) {
      EXPECT_EQ(w, kOwner + mine++);
    } else {
      EXPECT_EQ(w, next++);  // the dead publisher's, in its order
    }
  };
  for (Batch b = local.poll(); !b.empty(); b = local.poll()) {
    for (const Message& m : b) take(m);
  }
  EXPECT_GE(next, 1u);
  const auto start = Clock::now();
  for (std::uint64_t i = 0; i < 100; ++i) {
    t.publish(bytes_of(kOwner + i));
    for (const Message& m : local.poll()) take(m);
  }
  for (const Message& m : local.poll()) take(m);
  EXPECT_EQ(mine, 100u);
  EXPECT_LT(Clock::now() - start, 1s);
  EXPECT_TRUE(run_child([&] { return read_all(path_, 0); }).exited(0)) << "the server stopped serving";
}

TEST_F(CrossProcess, AReaderThatComesBackResumesAtItsCursorOrIsToldTheExactGap) {
  Topic& t = topic(lossless(60s));
  Server server = serve(*hub_, path_);
  for (std::uint64_t i = 0; i < 40; ++i) t.publish(bytes_of(i));
  // The first life: reads 25 messages, then dies with its cursor noted (its seat goes with it).
  int cursor_pipe[2];
  ASSERT_EQ(::pipe(cursor_pipe), 0);
  const pid_t first = ::fork();
  if (first == 0) {
    pushpoll::Remote remote = pushpoll::connect(path_);
    Subscriber sub = remote.topic("trades").subscribe(Start::oldest);
    Batch b = sub.poll(25);
    b.release();
    const std::uint64_t cursor = sub.cursor();
    (void)!::write(cursor_pipe[1], &cursor, sizeof(cursor));
    for (;;) ::pause();
  }
  std::uint64_t cursor = 0;
  ASSERT_EQ(::read(cursor_pipe[0], &cursor, sizeof(cursor)), static_cast<ssize_t>(sizeof(cursor)));
  ::kill(first, SIGKILL);
  ::waitpid(first, nullptr, 0);
  ::close(cursor_pipe[0]);
  ::close(cursor_pipe[1]);
  EXPECT_EQ(cursor, 25u);
  // The second life resumes there: the next message, no gap.
  EXPECT_TRUE(run_child([&] {
                pushpoll::Remote remote = pushpoll::connect(path_);
                Subscriber sub = remote.topic("trades").subscribe(Start::resume(cursor));
                Batch b = sub.poll();
                return b.gap() == 0 && b.first_seq() == 25 && b.size() == 15 && word_of(*b.begin()) == 25 ? 0 : 130;
              }).exited(0));
  // Meanwhile the ring moves on past it (nobody gates now): a third life is told the exact gap.
  for (std::uint64_t i = 40; i < 400; ++i) t.publish(bytes_of(i));
  const std::uint64_t oldest = t.oldest();
  ASSERT_GT(oldest, cursor);
  EXPECT_TRUE(run_child([&] {
                pushpoll::Remote remote = pushpoll::connect(path_);
                Subscriber sub = remote.topic("trades").subscribe(Start::resume(cursor));
                Batch b = sub.poll();
                return b.gap() == oldest - cursor && b.first_seq() == oldest && word_of(*b.begin()) == oldest ? 0 : 131;
              }).exited(0));
}

TEST_F(CrossProcess, AWakeGroupServesSubscribersOfTopicsOfAnotherProcess) {
  Topic& trades = topic();
  Topic& quotes = hub_->topic("quotes");
  Server server = serve(*hub_, path_);
  Gate ready, next;
  const auto in_child = [&] {
    pushpoll::Remote remote = pushpoll::connect(path_);
    Subscriber t = remote.topic("trades").subscribe(Start::latest);
    Subscriber q = remote.topic("quotes").subscribe(Start::latest);
    {
      WakeGroup group(remote.topic("trades"));
      if (group.add(t) != 0 || group.add(q) != 1) return 140;
      // A subscriber of another hub is refused.
      Hub local;
      Subscriber other = local.topic("x").subscribe();
      try {
        (void)group.add(other);
        return 141;
      } catch (const Error&) {
      }
      ready.open();
      auto ids = group.wait(5s);
      if (ids.size() != 1 || ids[0] != 1 || q.poll().size() != 1) return 142;
      next.open();
      ids = group.wait(5s);
      if (ids.size() != 1 || ids[0] != 0 || t.poll().size() != 1) return 143;
    }
    // Out of the group: the owner writes the subscriber's own eventfd again.
    next.open();
    const auto start = Clock::now();
    if (!t.wait(5s) || Clock::now() - start > 700ms || t.poll().size() != 1) return 144;
    return 0;
  };
  // Started once the child exists (see run_child()).
  const auto owner = [&] {
    ready.pass();
    std::this_thread::sleep_for(20ms);
    quotes.publish(bytes_of(std::uint64_t{1}));  // wakes member 1 only
    next.pass();
    std::this_thread::sleep_for(20ms);
    trades.publish(bytes_of(std::uint64_t{0}));  // wakes member 0 only
    next.pass();
    std::this_thread::sleep_for(20ms);
    trades.publish(bytes_of(std::uint64_t{2}));  // after the group is gone: the subscriber's own fd
  };
  const ChildEnd end = run_child(in_child, 20s, owner);
  EXPECT_TRUE(end.exited(0)) << "code " << end.code << " signal " << end.signal;
}

TEST_F(CrossProcess, MessagesLargerThanADatagramArePublishedAndClaimedFromAnotherProcess) {
  TopicOptions o;
  o.capacity = 4 << 20;
  o.max_message = 512 << 10;
  Topic& t = topic(o);
  Server server = serve(*hub_, path_, publishers_too());
  Subscriber local = t.subscribe(Start::oldest);
  const ChildEnd end = run_child([&] {
    pushpoll::Remote remote = pushpoll::connect(path_);
    Topic& rt = remote.topic("trades");
    const std::vector<std::byte> big = pattern(7, 300 << 10);
    if (rt.publish(big, 3) != 0) return 160;
    Claim c = rt.claim(200 << 10);
    const std::vector<std::byte> other = pattern(8, 200 << 10);
    std::memcpy(c.data().data(), other.data(), other.size());
    if (c.commit(4) != 1) return 161;
    try {
      (void)rt.publish(std::vector<std::byte>((512 << 10) + 1));
      return 162;
    } catch (const MessageTooLarge&) {
    }
    return 0;
  });
  EXPECT_TRUE(end.exited(0)) << "code " << end.code << " signal " << end.signal;
  Batch b = local.poll();
  ASSERT_EQ(b.size(), 2u);
  auto it = b.begin();
  EXPECT_EQ((*it).tag, 3u);
  EXPECT_TRUE(matches_pattern((*it).data, 7));
  EXPECT_EQ((*it).data.size(), 300u << 10);
  ++it;
  EXPECT_EQ((*it).tag, 4u);
  EXPECT_TRUE(matches_pattern((*it).data, 8));
}

}  // namespace
}  // namespace pushpoll::test
