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
// or the count of expiries a commit checks), then runs membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ): the kernel restarts
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

/// Restartable sequence: if `a == ea` and `b == eb`, stores `v1` to `t1` (when `kFirst`) and then
/// `v2` to `t2`, the commit: the sequence ends with it. A sequence interrupted before its commit
/// starts again from the checks, so anything it stored before the commit must leave the checks
/// true: never store to `a` or `b` except in the commit (rseq_store_if() below: a claim that
/// stored the claim word, was interrupted and re-checked the word would find it moved and leave a
/// seq claimed by nobody). The caller must have established, with the contender, that a withdrawal
/// of its right is followed by membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ) before the
/// contender acts. Stores are plain x86 stores: release, as every x86 store.
///
/// The descriptor the kernel reads to find the sequence ({version, flags, start, length, abort})
/// is built on the stack, and the abort handler (preceded by the signature the kernel checks) sits
/// in the sequence's own code: nothing points into the code from another section, so the sequence
/// can be inlined into inline functions, whose duplicate copies the linker discards.
template <bool kFirst>
[[gnu::always_inline]] inline Write rseq_checked_stores(const std::atomic<std::uint64_t>& a, std::uint64_t ea,
                                                        const std::atomic<std::uint64_t>& b, std::uint64_t eb,
                                                        std::atomic<std::uint64_t>& t1, std::uint64_t v1,
                                                        std::atomic<std::uint64_t>& t2, std::uint64_t v2) noexcept {
#if PUSHPOLL_HAVE_RSEQ
  // The kernel writes cpu_id >= 0 into a registered area; a thread it never registered (one not
  // started by glibc) cannot be restarted, so it must not write this way.
  if (!rseq_thread_registered()) [[unlikely]] return Write::fallback;
  const ptrdiff_t area = __rseq_offset;
  struct alignas(32) {
    std::uint64_t version_flags, start, length, abort;
  } desc;
restart:
  // Labels: 1 start; 2 end (after the commit store); 4 the abort handler, after the signature.
  asm goto(
      "movq $0, 0(%[desc])\n\t"
      "leaq 1f(%%rip), %%rax\n\t"
      "movq %%rax, 8(%[desc])\n\t"
      "movq $(2f - 1f), 16(%[desc])\n\t"
      "leaq 4f(%%rip), %%rax\n\t"
      "movq %%rax, 24(%[desc])\n\t"
      "movq %[desc], %%fs:8(%[area])\n\t"
      "1:\n\t"
      "cmpq %[ea], %[a]\n\t"
      "jnz %l[refused]\n\t"
      "cmpq %[eb], %[b]\n\t"
      "jnz %l[refused]\n\t"
      ".if %c[first]\n\t"
      "movq %[v1], %[t1]\n\t"
      ".endif\n\t"
      "movq %[v2], %[t2]\n\t"
      "2:\n\t"
      "movq $0, %%fs:8(%[area])\n\t"
      "jmp 5f\n\t"
      ".byte 0x0f, 0xb9, 0x3d\n\t"  // ud1 with the signature, never executed
      ".long 0x53053053\n\t"
      "4:\n\t"
      // Preempted, migrated, signalled, or aborted by a contender's membarrier: check again. The
      // kernel cleared rseq_cs before jumping here.
      "jmp %l[restart]\n\t"
      "5:\n\t"
      :
      : [area] "r"(area), [desc] "r"(&desc), [a] "m"(a), [ea] "r"(ea), [b] "m"(b), [eb] "r"(eb),
        [t1] "m"(t1), [v1] "r"(v1), [t2] "m"(t2), [v2] "r"(v2), [first] "i"(kFirst ? 1 : 0)
      : "memory", "cc", "rax"
      : refused, restart);
  return Write::done;
refused:
  asm volatile("movq $0, %%fs:8(%[area])" : : [area] "r"(area) : "memory");
  return Write::refused;
#else
  (void)a, (void)ea, (void)b, (void)eb, (void)t1, (void)v1, (void)t2, (void)v2;
  return Write::fallback;
#endif
}

/// If `a == ea` and `b == eb`, stores `v` to `t` (which may be `b`: the claim word, checked and
/// then moved), in one restartable sequence.
[[gnu::always_inline]] inline Write rseq_store_if(const std::atomic<std::uint64_t>& a, std::uint64_t ea,
                                                   const std::atomic<std::uint64_t>& b, std::uint64_t eb,
                                                   std::atomic<std::uint64_t>& t, std::uint64_t v) noexcept {
  return rseq_checked_stores<false>(a, ea, b, eb, t, v, t, v);
}

/// If `a == ea` and `b == eb`, stores `v1` to `t1` and then `v2` to `t2` (the commit), in one
/// restartable sequence. Neither target may be `a` or `b`.
[[gnu::always_inline]] inline Write rseq_store2_if(const std::atomic<std::uint64_t>& a, std::uint64_t ea,
                                                    const std::atomic<std::uint64_t>& b, std::uint64_t eb,
                                                    std::atomic<std::uint64_t>& t1, std::uint64_t v1,
                                                    std::atomic<std::uint64_t>& t2, std::uint64_t v2) noexcept {
  return rseq_checked_stores<true>(a, ea, b, eb, t1, v1, t2, v2);
}

/// Compare-and-swap of a whole index entry ({word, info}); on failure, `word` and `info` receive
/// what the entry holds. A full barrier (seq_cst): as the commit, it is the publisher's store of
/// SYNC(arm).
[[gnu::always_inline]] inline bool cas_entry(IndexEntry& e, std::uint64_t& word, std::uint64_t& info,
                                             std::uint64_t new_word, std::uint64_t new_info) noexcept {
#if defined(__x86_64__) && !defined(PUSHPOLL_TSAN)
  bool ok;
  asm volatile("lock cmpxchg16b %[e]"
               : "=@ccz"(ok), [e] "+m"(e), "+a"(word), "+d"(info)
               : "b"(new_word), "c"(new_info)
               : "memory");
  return ok;
#else
  // Little-endian: `word` is the low half. Under ThreadSanitizer this goes through the
  // instrumented 16-byte atomics, which synchronise with 8-byte atomic loads of `word` at the same
  // address.
  __extension__ typedef unsigned __int128 u128;  // __extension__: no -Wpedantic warning
  u128 expected = (u128{info} << 64) | word;
  const u128 desired = (u128{new_info} << 64) | new_word;
  const bool ok = __atomic_compare_exchange_n(reinterpret_cast<u128*>(&e), &expected, desired, false,
                                              __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  word = static_cast<std::uint64_t>(expected);
  info = static_cast<std::uint64_t>(expected >> 64);
  return ok;
#endif
}

}  // namespace pushpoll::detail
