// Greedy decoding's pick, each row by one thread, without writing the row's log_softmax:
//   token = torch.max's index: the first NaN where the row has one, else the first maximal element;
//   logprob = log_softmax.cpp's value there, (x[token] - max) - log_total, with its max (row_max.h) and its
//   log_total (log_total.h).
// bf16 and fp16 rows are first widened (exactly) into a buffer of each thread's.
#include "canonical.h"
#include "log_total.h"
#include "row_max.h"
#include "rows.h"

#include <ATen/Parallel.h>

#include <cstring>
#include <type_traits>
#include <vector>

namespace {

// The first i with x[i] == value (there is one), a vector of 16 compares at a time.
int64_t first_index_of(const float* x, int64_t width, float value) {
  constexpr int kLanes = 16;
  typedef float Lanes __attribute__((vector_size(kLanes * sizeof(float))));
  typedef int32_t Hits __attribute__((vector_size(kLanes * sizeof(int32_t))));
  int64_t i = 0;
  for (; i + kLanes <= width; i += kLanes) {
    Lanes v;
    std::memcpy(&v, x + i, sizeof(v));
    const Hits hits = v == value;
    int32_t any = 0;
    for (int j = 0; j < kLanes; ++j) any |= hits[j];
    if (any) break;
  }
  while (x[i] != value) ++i;
  return i;
}

// A NaN in x makes its log_total a NaN (exp and log pass NaNs on), so only then can the row hold one.
int64_t first_max_index(const float* x, int64_t width, float max, float log_total) {
  if (log_total == log_total) return first_index_of(x, width, max);
  for (int64_t i = 0; i < width; ++i) {
    if (x[i] != x[i]) return i;
  }
  return first_index_of(x, width, max);
}

template <typename scalar_t>
void pick_rows(const at::Tensor& logits, int64_t* tokens, float* logprobs) {
  const int64_t rows = logits.size(0), width = logits.size(1);
  const scalar_t* data = logits.data_ptr<scalar_t>();
  at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> widened(std::is_same_v<scalar_t, float> ? 0 : width);
    for (int64_t r = begin; r < end; ++r) {
      const float* x = reinterpret_cast<const float*>(data + r * width);
      if constexpr (!std::is_same_v<scalar_t, float>) {
        for (int64_t i = 0; i < width; ++i) widened[i] = static_cast<float>(data[r * width + i]);
        x = widened.data();
      }
      const float max = bi_bench::row_max(x, width), log_total = bi_bench::log_total(x, width, max);
      const int64_t token = first_max_index(x, width, max, log_total);
      tokens[r] = token;
      logprobs[r] = (x[token] - max) - log_total;
    }
  });
}

}  // namespace

// logits [rows, width > 0] of float32, bfloat16 or float16; returns tokens [rows] int64, logprobs [rows] fp32.
std::tuple<at::Tensor, at::Tensor> canonical_greedy(const at::Tensor& logits) {
  TORCH_CHECK(logits.dim() == 2 && logits.size(1) > 0, "canonical_greedy: logits must be [rows, width > 0]");
  const auto x = logits.contiguous();
  auto tokens = at::empty({x.size(0)}, x.options().dtype(at::kLong));
  auto logprobs = at::empty({x.size(0)}, x.options().dtype(at::kFloat));
  bi_bench::dispatch_floats(x.scalar_type(), "canonical_greedy", [&](auto zero) {
    pick_rows<decltype(zero)>(x, tokens.data_ptr<int64_t>(), logprobs.data_ptr<float>());
  });
  return {tokens, logprobs};
}
