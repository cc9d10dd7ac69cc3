// pushpoll/errors.hpp: every error derives from pushpoll::Error, and each one the library throws
// says what went wrong.
#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <typeinfo>

#include "test_support.hpp"

namespace pushpoll {
namespace {

using test::bytes_of;
using test::small_topic;

static_assert(std::is_base_of_v<std::runtime_error, Error>);
static_assert(std::is_base_of_v<Error, Full>);
static_assert(std::is_base_of_v<Error, Closed>);
static_assert(std::is_base_of_v<Error, InvalidCursor>);
static_assert(std::is_base_of_v<Error, MessageTooLarge>);

// Runs `f`, expects it to throw exactly E, and returns the message (caught as pushpoll::Error).
template <class E, class F>
std::string thrown_message(F&& f) {
  try {
    f();
  } catch (const E& e) {
    // A handler for E takes its subclasses too: for E = Error, that is every specific error.
    if (typeid(e) != typeid(E)) {
      ADD_FAILURE() << "threw " << typeid(e).name() << ", not exactly " << typeid(E).name();
    }
    // Also catchable as the base, which is what users write.
    try {
      throw;
    } catch (const Error& base) {
      return base.what();
    }
  } catch (const std::exception& other) {
    ADD_FAILURE() << "threw another exception: " << other.what();
    return {};
  }
  ADD_FAILURE() << "did not throw";
  return {};
}

TEST(Errors, FullFromTheLibraryIsAnErrorSayingTheTopicStayedFull) {
  test::TestHub hub;
  TopicOptions opt = small_topic();
  opt.publish_timeout = std::chrono::milliseconds(10);
  Topic& t = hub.topic("full", opt);
  Subscriber stalled = t.subscribe();
  const std::string payload(200, 'x');
  (void)test::fill_ring(t, bytes_of(payload));
  const std::string what = thrown_message<Full>([&] { t.publish(bytes_of(payload)); });
  EXPECT_NE(what.find("'full'"), std::string::npos) << what;
  EXPECT_NE(what.find("publish_timeout"), std::string::npos) << what;
}

TEST(Errors, ClosedFromTheLibraryIsAnErrorNamingTheTopic) {
  test::TestHub hub;
  Topic& t = hub.topic("shut");
  t.close();
  const std::string what = thrown_message<Closed>([&] { t.publish(bytes_of("x")); });
  EXPECT_NE(what.find("'shut'"), std::string::npos) << what;
  EXPECT_NE(what.find("closed"), std::string::npos) << what;
}

TEST(Errors, InvalidCursorFromTheLibraryIsAnErrorGivingTheValidRange) {
  test::TestHub hub;
  Topic& t = hub.topic("cursor");
  for (int i = 0; i < 3; ++i) t.publish(bytes_of("x"));
  const std::string what = thrown_message<InvalidCursor>([&] { (void)t.subscribe(Start::at(7)); });
  EXPECT_NE(what.find("7"), std::string::npos) << what;
  EXPECT_NE(what.find("oldest 0"), std::string::npos) << what;
  EXPECT_NE(what.find("head 3"), std::string::npos) << what;
}

TEST(Errors, MessageTooLargeFromTheLibraryIsAnErrorGivingBothSizes) {
  test::TestHub hub;
  Topic& t = hub.topic("big", small_topic());  // max_message defaults to 1024 here
  const std::string payload(1025, 'x');
  const std::string what = thrown_message<MessageTooLarge>([&] { t.publish(bytes_of(payload)); });
  EXPECT_NE(what.find("1025"), std::string::npos) << what;
  EXPECT_NE(what.find("1024"), std::string::npos) << what;
}

TEST(Errors, InvalidOptionsAreAPlainErrorSayingWhy) {
  TopicOptions opt;
  opt.capacity = 1000;
  const std::string what = thrown_message<Error>([&] { opt.validate(); });
  EXPECT_NE(what.find("power of two"), std::string::npos) << what;
}

}  // namespace
}  // namespace pushpoll
