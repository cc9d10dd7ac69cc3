// pushpoll/options.hpp: option defaults, validation with reasons, comparison, and Start.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "test_support.hpp"

namespace pushpoll {
namespace {

// The message of the Error that validate() throws, or "" if it accepts the options.
std::string rejection(const TopicOptions& opt) {
  try {
    opt.validate();
  } catch (const Error& e) {
    return e.what();
  }
  return {};
}

TEST(TopicOptions, DefaultsAreOneMiBBlockingWithDocumentedTimeouts) {
  const TopicOptions opt;
  EXPECT_EQ(opt.capacity, std::uint64_t{1} << 20);
  EXPECT_EQ(opt.overflow, Overflow::block);
  EXPECT_EQ(opt.publish_timeout, std::chrono::seconds(1));
  EXPECT_EQ(opt.stall_timeout, std::chrono::seconds(5));
  EXPECT_GE(opt.max_subscribers, 16384u);
  EXPECT_FALSE(opt.single_producer);
  EXPECT_EQ(rejection(opt), "");
}

TEST(TopicOptions, MaxMessageDefaultsToTheSmallerOf64KiBAndAQuarterOfTheCapacity) {
  TopicOptions opt;
  opt.capacity = 4096;
  EXPECT_EQ(opt.effective_max_message(), 1024u);
  opt.capacity = 65536;
  EXPECT_EQ(opt.effective_max_message(), 16384u);
  opt.capacity = 262144;
  EXPECT_EQ(opt.effective_max_message(), 65536u);
  opt.capacity = std::uint64_t{1} << 20;
  EXPECT_EQ(opt.effective_max_message(), 65536u);
  opt.max_message = 100;
  EXPECT_EQ(opt.effective_max_message(), 100u);
}

TEST(TopicOptions, EveryPowerOfTwoFrom4KiBIsAValidCapacity) {
  for (std::uint64_t capacity = 4096; capacity <= (std::uint64_t{1} << 30); capacity <<= 1) {
    TopicOptions opt;
    opt.capacity = capacity;
    EXPECT_EQ(rejection(opt), "") << "capacity " << capacity;
  }
}

TEST(TopicOptions, CapacityThatIsNotAPowerOfTwoIsRejectedSayingSo) {
  TopicOptions opt;
  opt.capacity = 4096 + 4096 / 2;
  const std::string why = rejection(opt);
  EXPECT_NE(why.find("6144"), std::string::npos) << why;
  EXPECT_NE(why.find("power of two"), std::string::npos) << why;
}

TEST(TopicOptions, CapacityUnder4KiBIsRejectedSayingSo) {
  for (std::uint64_t capacity : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{2048}}) {
    TopicOptions opt;
    opt.capacity = capacity;
    const std::string why = rejection(opt);
    EXPECT_NE(why.find("at least 4096"), std::string::npos) << "capacity " << capacity << ": " << why;
  }
}

TEST(TopicOptions, MaxMessageOverAQuarterOfTheCapacityIsRejectedSayingSo) {
  TopicOptions opt;
  opt.capacity = 4096;
  opt.max_message = 1024;
  EXPECT_EQ(rejection(opt), "");
  opt.max_message = 1025;
  const std::string why = rejection(opt);
  EXPECT_NE(why.find("1025"), std::string::npos) << why;
  EXPECT_NE(why.find("quarter"), std::string::npos) << why;
}

TEST(TopicOptions, ZeroSubscribersAndNegativeTimeoutsAreRejected) {
  TopicOptions opt;
  opt.max_subscribers = 0;
  EXPECT_NE(rejection(opt).find("max_subscribers"), std::string::npos);

  opt = TopicOptions{};
  opt.publish_timeout = std::chrono::milliseconds(-1);
  EXPECT_NE(rejection(opt).find("must not be negative"), std::string::npos);

  opt = TopicOptions{};
  opt.stall_timeout = std::chrono::milliseconds(-1);
  EXPECT_NE(rejection(opt).find("must not be negative"), std::string::npos);
}

TEST(TopicOptions, SizesOverTheLimitsAreRejectedNamingTheLimitNotByRunningOutOfMemory) {
  TopicOptions opt;
  opt.max_subscribers = 0xffffffffu;
  EXPECT_NE(rejection(opt).find("max_subscribers 4294967295 is over the limit of 1048576"), std::string::npos)
      << rejection(opt);
  opt = TopicOptions{};
  opt.capacity = std::uint64_t{1} << 46;
  EXPECT_NE(rejection(opt).find("over the limit of 17179869184 bytes (16 GiB)"), std::string::npos) << rejection(opt);
  opt = TopicOptions{};
  opt.capacity = std::uint64_t{1} << 30;
  opt.max_message = std::uint32_t{1} << 26;
  EXPECT_NE(rejection(opt).find("max_message 67108864 is over the limit of 67108863 bytes"), std::string::npos)
      << rejection(opt);
  opt = TopicOptions{};
  opt.index_size = 100;
  EXPECT_NE(rejection(opt).find("power of two"), std::string::npos) << rejection(opt);
  opt.index_size = std::uint64_t{1} << 28;
  EXPECT_NE(rejection(opt).find("over the limit of 134217728 messages"), std::string::npos) << rejection(opt);
  opt = TopicOptions{};
  opt.claim_timeout = std::chrono::milliseconds(-1);
  EXPECT_NE(rejection(opt).find("must not be negative"), std::string::npos);
  // Through a hub too: an Error, nothing allocated.
  test::TestHub hub;
  TopicOptions huge;
  huge.max_subscribers = 0xffffffffu;
  EXPECT_THROW(hub.topic("huge", huge), Error);
  EXPECT_EQ(hub.find("huge"), nullptr);
}

TEST(TopicOptions, SameAsComparesEffectiveValues) {
  TopicOptions a;
  a.capacity = 4096;
  TopicOptions b = a;
  b.max_message = 1024;  // the default for this capacity, spelled out
  EXPECT_TRUE(a.same_as(b));
  EXPECT_TRUE(b.same_as(a));
  b.max_message = 512;
  EXPECT_FALSE(a.same_as(b));
}

TEST(TopicOptions, SameAsNoticesEveryField) {
  const TopicOptions base;
  for (const test::OptionChange& change : test::kOptionChanges) {
    TopicOptions other = base;
    change.apply(other);
    EXPECT_FALSE(base.same_as(other)) << change.field;
    EXPECT_FALSE(other.same_as(base)) << change.field;
  }
}

TEST(TopicOptions, DescribeNamesEveryEffectiveValue) {
  TopicOptions opt;
  opt.capacity = 8192;
  opt.overflow = Overflow::overwrite;
  opt.single_producer = true;
  const std::string text = opt.describe();
  EXPECT_NE(text.find("capacity=8192"), std::string::npos) << text;
  EXPECT_NE(text.find("max_message=2048"), std::string::npos) << text;
  EXPECT_NE(text.find("overflow=overwrite"), std::string::npos) << text;
  EXPECT_NE(text.find("single_producer=true"), std::string::npos) << text;
  EXPECT_NE(text.find("max_subscribers=16384"), std::string::npos) << text;
}

TEST(Start, KindsAndSeqAreWhatWasAskedFor) {
  static_assert(Start::oldest.kind() == Start::Kind::oldest);
  static_assert(Start::latest.kind() == Start::Kind::latest);
  constexpr Start at = Start::at(42);
  static_assert(at.kind() == Start::Kind::at);
  static_assert(at.seq() == 42);
  EXPECT_EQ(Start::at(~std::uint64_t{0}).seq(), ~std::uint64_t{0});
  constexpr Start resume = Start::resume(7);
  static_assert(resume.kind() == Start::Kind::resume);
  static_assert(resume.seq() == 7);
}

TEST(TagMasks, AllTagsCoversTags0To63) {
  EXPECT_EQ(kMaxTag, 63u);
  for (unsigned tag = 0; tag <= kMaxTag; ++tag) EXPECT_TRUE((kAllTags >> tag) & 1u) << tag;
}

}  // namespace
}  // namespace pushpoll
