// pushpoll/hub.hpp: topics by name, option conflicts, close, and the memory provider seam.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

namespace pushpoll {
namespace {

using test::bytes_of;
using test::small_topic;

TEST(Hub, SameNameAndSameOptionsReturnTheSameTopic) {
  test::TestHub hub;
  Topic& a = hub.topic("trades", small_topic());
  Topic& b = hub.topic("trades", small_topic());
  EXPECT_EQ(&a, &b);
  EXPECT_EQ(a.name(), "trades");
  a.publish(bytes_of("one"));
  EXPECT_EQ(b.head(), 1u);
}

TEST(Hub, NameWithoutOptionsReturnsTheExistingTopicWhateverItsOptions) {
  test::TestHub hub;
  Topic& a = hub.topic("t", small_topic(8192, Overflow::overwrite));
  EXPECT_EQ(&hub.topic("t"), &a);
  EXPECT_EQ(hub.topic("t").options().capacity, 8192u);
}

TEST(Hub, NameWithoutOptionsCreatesATopicWithDefaultOptions) {
  test::TestHub hub;
  Topic& t = hub.topic("fresh");
  EXPECT_TRUE(t.options().same_as(TopicOptions{}));
  EXPECT_EQ(&hub.topic("fresh", TopicOptions{}), &t);
}

TEST(Hub, SameNameWithOtherOptionsThrowsErrorNamingBoth) {
  test::TestHub hub;
  (void)hub.topic("prices", small_topic(4096));
  std::string what;
  try {
    (void)hub.topic("prices", small_topic(8192));
    ADD_FAILURE() << "no throw";
  } catch (const Error& e) {
    what = e.what();
  }
  EXPECT_NE(what.find("'prices'"), std::string::npos) << what;
  EXPECT_NE(what.find("capacity=4096"), std::string::npos) << what;
  EXPECT_NE(what.find("capacity=8192"), std::string::npos) << what;
}

TEST(Hub, EveryOptionThatDiffersMakesTheLookupThrow) {
  test::TestHub hub;
  const TopicOptions base = small_topic();
  Topic& t = hub.topic("t", base);
  for (const test::OptionChange& change : test::kOptionChanges) {
    TopicOptions other = base;
    change.apply(other);
    EXPECT_THROW((void)hub.topic("t", other), Error) << change.field;
  }
  EXPECT_EQ(&hub.topic("t", base), &t);
}

TEST(Hub, InvalidOptionsThrowErrorAndCreateNothing) {
  test::TestHub hub;
  TopicOptions opt;
  opt.capacity = 4095;
  EXPECT_THROW((void)hub.topic("bad", opt), Error);
  EXPECT_EQ(hub.find("bad"), nullptr);
  EXPECT_TRUE(hub.topic_names().empty());
}

TEST(Hub, FindAndTopicNamesSeeOnlyCreatedTopics) {
  test::TestHub hub;
  EXPECT_EQ(hub.find("a"), nullptr);
  Topic& b = hub.topic("b", small_topic());
  Topic& a = hub.topic("a", small_topic());
  EXPECT_EQ(hub.find("a"), &a);
  EXPECT_EQ(hub.find("b"), &b);
  EXPECT_EQ(hub.find("c"), nullptr);
  EXPECT_EQ(hub.topic_names(), (std::vector<std::string>{"a", "b"}));
}

TEST(Hub, TopicsAreIndependent) {
  test::TestHub hub;
  Topic& a = hub.topic("a", small_topic());
  Topic& b = hub.topic("b", small_topic());
  a.publish(bytes_of("to a"));
  a.publish(bytes_of("to a"));
  EXPECT_EQ(b.publish(bytes_of("to b")), 0u);
  EXPECT_EQ(a.head(), 2u);
  EXPECT_EQ(b.head(), 1u);
}

TEST(Hub, CloseClosesEveryTopicAndRefusesNewOnes) {
  test::TestHub hub;
  Topic& a = hub.topic("a", small_topic());
  Subscriber sub = a.subscribe();
  a.publish(bytes_of("kept"));
  hub.close();
  hub.close();  // idempotent
  EXPECT_TRUE(a.closed());
  EXPECT_THROW((void)hub.topic("a", small_topic()), Closed);
  EXPECT_THROW((void)hub.topic("new"), Closed);
  EXPECT_THROW(a.publish(bytes_of("x")), Closed);
  // What was retained can still be read.
  const auto got = test::drain(sub);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(test::text_of(got[0].data), "kept");
}

// Counts what the hub asks of its memory provider.
class CountingMemory final : public MemoryProvider {
 public:
  void* allocate(std::size_t bytes, std::size_t alignment) override {
    ++allocations;
    last_bytes = bytes;
    last_alignment = alignment;
    last_region = static_cast<std::byte*>(heap.allocate(bytes, alignment));
    return last_region;
  }
  void deallocate(void* region, std::size_t bytes, std::size_t alignment) noexcept override {
    ++deallocations;
    EXPECT_EQ(bytes, last_bytes);
    EXPECT_EQ(alignment, last_alignment);
    heap.deallocate(region, bytes, alignment);
  }
  HeapMemory heap;
  int allocations = 0;
  int deallocations = 0;
  std::size_t last_bytes = 0;
  std::size_t last_alignment = 0;
  std::byte* last_region = nullptr;
};

TEST(Hub, AHubWithoutANotifierIsRefused) {
  EXPECT_THROW(Hub(HubOptions{}, nullptr), Error);
}

TEST(Hub, TopicRegionsComeFromTheMemoryProviderAndGoBackToIt) {
  auto memory = std::make_shared<CountingMemory>();
  {
    HubOptions options;
    options.memory = memory;
    test::TestHub hub(options);
    Topic& t = hub.topic("t", small_topic(8192));
    EXPECT_EQ(memory->allocations, 1);
    EXPECT_GE(memory->last_bytes, 8192u);
    // The whole ring (records included) lies inside the provided region.
    const std::byte* records = t.ring().at(0);
    EXPECT_GE(records, memory->last_region);
    EXPECT_LE(records + t.ring().capacity(), memory->last_region + memory->last_bytes);
    t.publish(bytes_of("x"));
    EXPECT_EQ(memory->deallocations, 0);
  }
  EXPECT_EQ(memory->deallocations, 1);
}

TEST(Hub, SubscriberOutlivingItsHubStillReadsWhatWasRetained) {
  auto hub = std::make_unique<test::TestHub>();
  Topic& t = hub->topic("t", small_topic());
  Subscriber sub = t.subscribe();
  t.publish(bytes_of("before the end"));
  hub.reset();  // closes the topic; the subscriber keeps its memory alive
  EXPECT_TRUE(sub.topic().closed());
  EXPECT_THROW(sub.topic().publish(bytes_of("x")), Closed);
  const auto got = test::drain(sub);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(test::text_of(got[0].data), "before the end");
}

// A Claim that outlives its hub (and the topic's subscribers) keeps the topic's memory: its
// commit or abort must not write into freed memory. Once this was a use-after-free in release
// builds. The memory provider sees whether the region was given back.
struct Outliving {
  std::shared_ptr<CountingMemory> memory = std::make_shared<CountingMemory>();
  std::unique_ptr<test::TestHub> hub;
  Topic* topic = nullptr;
  explicit Outliving(TopicOptions options = small_topic()) {
    HubOptions hub_options;
    hub_options.memory = memory;
    hub = std::make_unique<test::TestHub>(hub_options);
    topic = &hub->topic("t", options);
  }
};

TEST(Hub, AClaimOutlivingItsHubAndSubscribersKeepsTheTopicsMemoryAndCommits) {
  Outliving o;
  std::optional<Subscriber> sub(o.topic->subscribe());
  Claim claim = o.topic->claim(8);
  o.hub.reset();
  sub.reset();  // the last reference to the topic goes while the claim is open
  EXPECT_EQ(o.memory->deallocations, 0) << "the region went back under an open claim";
  std::memcpy(claim.data().data(), "outlived", 8);
  EXPECT_EQ(claim.commit(), 0u);
  EXPECT_EQ(o.memory->deallocations, 0) << "kept until exit: the claim ended after the last reference went";
}

TEST(Hub, AClaimOutlivingItsHubPublishesToSubscribersThatStillHoldTheTopic) {
  Outliving o;
  Subscriber sub = o.topic->subscribe();
  std::optional<Claim> claim(o.topic->claim(8));
  std::optional<Claim> dropped(o.topic->claim(4));
  o.hub.reset();
  std::memcpy(claim->data().data(), "outlived", 8);
  EXPECT_EQ(claim->commit(3), 0u);
  dropped.reset();  // an abort after the hub went
  const auto got = test::drain(sub);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(test::text_of(got[0].data), "outlived");
  EXPECT_EQ(got[0].tag, 3u);
  EXPECT_TRUE(got[1].aborted);
  EXPECT_THROW((void)sub.wait(std::chrono::nanoseconds(0)), Closed);
  EXPECT_EQ(o.memory->deallocations, 0);
  sub.unsubscribe();  // no claim open now: the last reference frees the region
  EXPECT_EQ(o.memory->deallocations, 1);
}

TEST(Hub, AnExpiredClaimOutlivingItsHubStillKeepsTheMemoryItsHolderTouches) {
  TopicOptions options = small_topic();
  options.claim_timeout = std::chrono::milliseconds(10);
  Outliving o(options);
  std::optional<Subscriber> sub(o.topic->subscribe());
  Claim stuck = o.topic->claim(8);
  o.topic->publish(bytes_of("behind"));
  for (int i = 0; i < 2000 && o.topic->stats().expired == 0; ++i) {
    (void)sub->poll();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(o.topic->stats().expired, 1u) << "the reader never expired the claim";
  o.hub.reset();
  sub.reset();
  EXPECT_EQ(o.memory->deallocations, 0) << "freed while an expired claim's holder still points at it";
  EXPECT_THROW((void)stuck.commit(), ClaimExpired);
}

TEST(Hub, TopicsWithEveryClaimEndedAreFreedWithTheirHub) {
  Outliving o;
  o.topic->claim(8).commit();
  { Claim dropped = o.topic->claim(8); }
  o.topic->publish(bytes_of("x"));
  o.hub.reset();
  EXPECT_EQ(o.memory->deallocations, 1);
}

}  // namespace
}  // namespace pushpoll
