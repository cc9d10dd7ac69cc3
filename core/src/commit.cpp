// The restartable sequence producers write contested words with (detail/commit.hpp explains why
// and when). Out of line: see the note on rseq_store2_if() in the header.
#include "pushpoll/detail/commit.hpp"

namespace pushpoll::detail {

Write rseq_store2_if(const std::atomic<std::uint64_t>& a, std::uint64_t ea, const std::atomic<std::uint64_t>& b,
                     std::uint64_t eb, std::atomic<std::uint64_t>& t1, std::uint64_t v1,
                     std::atomic<std::uint64_t>& t2, std::uint64_t v2) noexcept {
#if PUSHPOLL_HAVE_RSEQ
  const ptrdiff_t area = __rseq_offset;
  // The kernel writes cpu_id >= 0 into a registered area; a thread it never registered (one not
  // started by glibc) cannot be restarted, so it must not write this way.
  if (!rseq_thread_registered()) return Write::fallback;
  // Labels: 3 the descriptor {version, flags, start, length, abort}; 1 start; 2 end (after the
  // commit store); 4 the abort handler, preceded by the signature the kernel checks.
restart:
  asm goto(
      ".pushsection __rseq_cs, \"aw\"\n\t"
      ".balign 32\n\t"
      "3:\n\t"
      ".long 0, 0\n\t"
      ".quad 1f, (2f - 1f), 4f\n\t"
      ".popsection\n\t"
      "leaq 3b(%%rip), %%rax\n\t"
      "movq %%rax, %%fs:8(%[area])\n\t"
      "1:\n\t"
      "cmpq %[ea], %[a]\n\t"
      "jnz %l[refused]\n\t"
      "cmpq %[eb], %[b]\n\t"
      "jnz %l[refused]\n\t"
      "movq %[v1], %[t1]\n\t"
      "movq %[v2], %[t2]\n\t"
      "2:\n\t"
      "movq $0, %%fs:8(%[area])\n\t"
      ".pushsection __rseq_failure, \"ax\"\n\t"
      ".byte 0x0f, 0xb9, 0x3d\n\t"
      ".long 0x53053053\n\t"
      "4:\n\t"
      // Preempted, migrated, signalled, or aborted by a contender's membarrier: check again. The
      // kernel cleared rseq_cs before jumping here.
      "jmp %l[restart]\n\t"
      ".popsection\n\t"
      :
      : [area] "r"(area), [a] "m"(a), [ea] "r"(ea), [b] "m"(b), [eb] "r"(eb), [t1] "m"(t1),
        [v1] "r"(v1), [t2] "m"(t2), [v2] "r"(v2)
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

}  // namespace pushpoll::detail
