// pushpoll/detail/commit.hpp — the two ways a producer writes a word that someone else may be trying
// to take from it: a compare-and-swap, or a restartable sequence.
//
// Not part of the public API. Two producer writes can be contested:
//   * the claim word, when one thread holds the topic's bias (it claims with a plain store; a
//     thread that wants to claim too revokes the bias first), and
//   * an index entry's commit mark, which an expirer may try to take for an aborted record
//     (docs/DESIGN.md, "Claims that never commit").
// The portable way is a locked compare-and-swap. On x86 every locked instruction waits until the
// producer's earlier stores are visible to the other cores; when a reader spins on the line the last
// commit wrote, that is a cross-core round trip per message, three times the cost of everything
// else a publish does. So where the kernel offers restartable sequences (rseq, registered by glibc
// for every thread), the producer instead checks its right to write and writes with plain loads and
// stores inside a restartable sequence, and the rare contender first withdraws the right (the bias,
// or `expiring`), then runs membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ): the kernel restarts
// every sequence in flight in the process, so after it returns no producer can store on the
// strength of a check it made before the withdrawal. The sequence re-checks from the top; a
// producer preempted, migrated or signalled inside it simply re-checks too.
//
// ThreadSanitizer sees neither the sequence nor membarrier: its build uses compare-and-swap only.
#pragma once
#include <atomic>
#include <cstdint>

#include "pushpoll/detail/ring.hpp"

#if defined(__x86_64__) && defined(__linux__) && !defined(PUSHPOLL_TSAN) && __has_include(<sys/rseq.h>)
#include <sys/rseq.h>
#define PUSHPOLL_HAVE_RSEQ 1
#else
#define PUSHPOLL_HAVE_RSEQ 0
#endif

namespace pushpoll::detail {

/// A number that identifies the calling thread while it lives (the address of a thread-local).
[[nodiscard]] inline std::uint64_t thread_token() noexcept {
  static thread_local char token;
  return reinterpret_cast<std::uintptr_t>(&token);
}

/// Whether this process registers restartable sequences (glibc does for every thread it starts,
/// unless the tunable glibc.pthread.rseq=0 or the kernel refuses).
[[nodiscard]] inline bool rseq_registered() noexcept {
#if PUSHPOLL_HAVE_RSEQ
  return __rseq_size > 0;
#else
  return false;
#endif
}

/// Whether the kernel restarts the calling thread's sequences (it registered an rseq area).
[[nodiscard]] inline bool rseq_thread_registered() noexcept {
#if PUSHPOLL_HAVE_RSEQ
  if (__rseq_size == 0) return false;
  auto* rs = reinterpret_cast<volatile struct rseq*>(static_cast<char*>(__builtin_thread_pointer()) + __rseq_offset);
  return static_cast<std::int32_t>(rs->cpu_id) >= 0;
#else
  return false;
#endif
}

enum class Write : std::uint8_t {
  done,      // stored
  refused,   // a check failed: the caller lost its right (or the value moved on)
  fallback,  // this thread has no registered rseq area: use compare-and-swap
};

/// Restartable sequence: if `a == ea` and `b == eb`, stores `v1` to `t1` and then `v2` to `t2` (the
/// commit: the sequence ends with it). A sequence interrupted before its last store starts again
/// from the checks. The caller must have established, with the contender, that a withdrawal of its
/// right is followed by membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ) before the contender
/// acts. Stores are plain x86 stores: release, as every x86 store.
///
/// Out of line (core/src/commit.cpp) on purpose: the kernel finds a sequence through a descriptor
/// in a section of its own that points into the function's code, and a copy inlined into an inline
/// function would sit in a COMDAT section the linker may discard, leaving the descriptor dangling.
Write rseq_store2_if(const std::atomic<std::uint64_t>& a, std::uint64_t ea, const std::atomic<std::uint64_t>& b,
                     std::uint64_t eb, std::atomic<std::uint64_t>& t1, std::uint64_t v1,
                     std::atomic<std::uint64_t>& t2, std::uint64_t v2) noexcept;

/// Compare-and-swap of a whole index entry ({word, pos}); on failure, `word` and `pos` receive what
/// the entry holds. A full barrier (seq_cst): as the commit, it is the publisher's store of SYNC(arm).
[[gnu::always_inline]] inline bool cas_entry(IndexEntry& e, std::uint64_t& word, std::uint64_t& pos,
                                             std::uint64_t new_word, std::uint64_t new_pos) noexcept {
#if defined(__x86_64__) && !defined(PUSHPOLL_TSAN)
  bool ok;
  asm volatile("lock cmpxchg16b %[e]"
               : "=@ccz"(ok), [e] "+m"(e), "+a"(word), "+d"(pos)
               : "b"(new_word), "c"(new_pos)
               : "memory");
  return ok;
#else
  // Little-endian: `word` is the low half. Under ThreadSanitizer this goes through the
  // instrumented 16-byte atomics, which synchronise with 8-byte atomic loads of `word` at the same
  // address.
  using u128 = unsigned __int128;
  u128 expected = (u128{pos} << 64) | word;
  const u128 desired = (u128{new_pos} << 64) | new_word;
  const bool ok = __atomic_compare_exchange_n(reinterpret_cast<u128*>(&e), &expected, desired, false,
                                              __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  word = static_cast<std::uint64_t>(expected);
  pos = static_cast<std::uint64_t>(expected >> 64);
  return ok;
#endif
}

}  // namespace pushpoll::detail
