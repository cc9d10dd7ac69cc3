// ThreadSanitizer suppressions, compiled into both wake-up executables (ThreadSanitizer builds only).
#if defined(PUSHPOLL_TSAN)
// ThreadSanitizer reads this hook at start-up.
extern "C" const char* __tsan_default_suppressions();
extern "C" const char* __tsan_default_suppressions() {
  // boost::lockfree's freelist (under Topic::armed_set()) reads a free node's `next` with a plain
  // load while another thread may already have taken and reused the node; the tagged-pointer CAS
  // that follows then fails and the value read is dropped. Benign by design, reported by
  // ThreadSanitizer as a race (boostorg/lockfree#78).
  return "race:boost::lockfree::detail::freelist_stack\n";
}
#endif
