// Canonical matmul: out[m, n] = sum over k of x[m, k] * w[n, k], one reduction order per output element.
//
// Reduction order, the same for every batch, thread count and x86-64 CPU:
//   fp32: acc = +0; for k = 0, 1, ..., K-1: acc = fma(x[m, k], w[n, k], acc).
//   bf16: operands widened exactly to fp32 and K padded with one zero to even length; for each pair p:
//         acc = fma(x[2p+1], w[2p+1], acc); acc = fma(x[2p], w[2p], acc); denormal inputs read as zero,
//         denormal results flushed to zero, round to nearest even. That is one vdpbf16ps lane (Intel SDM:
//         "FP32 FMA with daz in, ftz out", the odd element first). CPUs with avx512_bf16 run that
//         instruction; every other CPU runs the same FMAs under MXCSR DAZ|FTZ, and so do CPUs with AMX above
//         kRows rows, where the FMAs are the faster (64-2048 rows on an AMX Xeon: 270-300 GFLOP/s against
//         vdpbf16ps's 180-200; on an AMD EPYC with avx512_bf16 and no AMX, vdpbf16ps at 32-256 rows: 646-754
//         against 383-411).
//   bf16 x: each fp32 sum rounded once to bf16, to nearest even as c10::BFloat16 rounds (a NaN: 0x7FC0), in the
//         tile's store.
// Vector lanes span output columns only (each lane is one column's own accumulator), never K, so the
// vector width (8 lanes with AVX2, 16 with AVX-512) cannot change a sum, and every output element is
// computed from start to end by one thread.
//
// Several weights that share x (q, k and v; gate and up) go through one call: their panels form one range.
//
// Layout: weights are packed once into panels of kCols columns, K innermost ([panel][step][column], or
// [panel][pair][column][2] for the native bf16 instruction); each bf16 call packs x into micro-panels of kRows
// rows the same way (fp32 x is read where it lies), and a register tile of kRows x kCols accumulators walks the
// steps.
#include "bf16.h"
#include "canonical.h"

#include <ATen/Parallel.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

namespace {

#if defined(__AVX512F__)
constexpr int kLanes = 16;
using Vec = __m512;
inline Vec zeros() { return _mm512_setzero_ps(); }
inline Vec load(const float* p) { return _mm512_loadu_ps(p); }
inline Vec load(const uint16_t* p) {  // 16 bf16 -> fp32 (exact: the bits move up by 16)
  return bi_bench::widened(_mm256_loadu_si256((const __m256i*)p));
}
inline void store(float* p, Vec v) { _mm512_storeu_ps(p, v); }
inline Vec broadcast(float x) { return _mm512_set1_ps(x); }
inline Vec fma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
#elif defined(__AVX2__) && defined(__FMA__)
constexpr int kLanes = 8;
using Vec = __m256;
inline Vec zeros() { return _mm256_setzero_ps(); }
inline Vec load(const float* p) { return _mm256_loadu_ps(p); }
inline Vec load(const uint16_t* p) {
  return bi_bench::widened(_mm_loadu_si128((const __m128i*)p));
}
inline void store(float* p, Vec v) { _mm256_storeu_ps(p, v); }
inline Vec broadcast(float x) { return _mm256_set1_ps(x); }
inline Vec fma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
#else
#error "the canonical matmul needs x86-64 with AVX2 and FMA, or AVX-512"
#endif

#if defined(__AVX512BF16__)
constexpr bool kNativeBf16 = true;
#else
constexpr bool kNativeBf16 = false;
#endif

constexpr int kRows = 6;
// The most rows a native bf16 call takes (above: FMAs, the same bits), by which is faster on the CPU (see the top)
#if defined(__AMX_BF16__)
constexpr int64_t kNativeBf16Rows = kRows;
#else
constexpr int64_t kNativeBf16Rows = INT64_MAX;
#endif
constexpr int kCols = 2 * kLanes;
constexpr int64_t kPanelsPerBlock = 16;  // x micro-panels sharing one weight panel while it is in cache
constexpr unsigned kDenormalsAreZero = 0x0040, kFlushToZero = 0x8000;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t bf16_steps(int64_t k) { return k + (k & 1); }
// The bf16 order as a sequence of k: 1, 0, 3, 2, ... (index K, past the end, is the zero pad)
constexpr auto bf16_source = [](int64_t step) { return step ^ 1; };  // a lambda: pack_rows inlines it

uint16_t bf16_bits(const at::BFloat16& v) { return v.x; }

// MXCSR for the emulated bf16 order, set and restored by each thread around its share of the work.
class Bf16Rounding {
 public:
  explicit Bf16Rounding(bool on) : saved_(_mm_getcsr()), on_(on) {
    if (on_) _mm_setcsr(saved_ | kDenormalsAreZero | kFlushToZero);
  }
  ~Bf16Rounding() {
    if (on_) _mm_setcsr(saved_);
  }

 private:
  unsigned saved_;
  bool on_;
};

// Bytes to bring into L2 while a tile computes, one line per K step: the slice of the next weight panel that this
// tile's share of its block asks for.
struct Fetch {
  const char* begin = nullptr;
  const char* end = nullptr;
  void step() {
    if (begin < end) {
      __builtin_prefetch(begin, 0, 2);
      begin += 64;
    }
  }
};

// Where a tile's first output goes: an fp32 output, or a bf16 one (bf16 x), whose elements are the fp32 sums rounded
// once in the tile's store, as c10::BFloat16 rounds (round_to_bf16), without an fp32 tensor between.
struct Out {
  float* f32 = nullptr;
  uint16_t* bf16 = nullptr;
  Out at(int64_t offset) const { return f32 ? Out{f32 + offset, nullptr} : Out{nullptr, bf16 + offset}; }
};

// acc[r][2g], acc[r][2g + 1]: row r, panel g's two vectors; only the last panel may be partial (cols < kCols)
template <int rows, int panels, typename vec_t, typename store_fn>
void store_tile(vec_t (&acc)[rows][2 * panels], Out out, int64_t ld, int64_t cols, store_fn store_vec) {
  alignas(64) float buffer[kCols];
  for (int r = 0; r < rows; ++r) {
    for (int g = 0; g < panels; ++g) {
      const bool partial = g == panels - 1 && cols != kCols;
      const Out to = out.at(r * ld + g * kCols);
      float* dst = partial || !to.f32 ? buffer : to.f32;
      store_vec(dst, acc[r][2 * g]);
      store_vec(dst + kLanes, acc[r][2 * g + 1]);
      if (to.bf16) {
        bi_bench::round_to_bf16(buffer, to.bf16, partial ? cols : kCols);
      } else if (partial) {
        std::memcpy(to.f32, buffer, cols * sizeof(float));
      }
    }
  }
}

// x's fp32 values as the FMA tiles read them: row r of row panel p at step s is
// data[p * panel + s * step + r * row]. Packed ([row_panels][steps][kRows]) or, for fp32 x, which needs neither
// widening nor reordering, x itself ([M, K]): the same values either way, so the same sums.
struct Operand {
  const float* data;
  int64_t panel, step, row;
  static Operand packed(const at::Tensor& a) { return {a.data_ptr<float>(), a.size(1) * kRows, kRows, 1}; }
  static Operand rows_of(const at::Tensor& x) { return {x.data_ptr<float>(), kRows * x.size(1), 1, x.size(1)}; }
  const float* of(int64_t row_panel) const { return data + row_panel * panel; }
};

// acc[r][c] for `rows` x-rows against `panels` consecutive full weight panels (b: the first; panel_stride apart);
// a: the row panel's x (element (s, r) at a[s * step + r * row]), b: [steps][kCols] per panel. More panels at once
// only add independent accumulators, so that few rows still keep several FMA chains in flight; each column's chain
// is the same.
template <int rows, int panels, typename weight_t>
void tile(const float* a, int64_t step, int64_t row, const weight_t* b, int64_t panel_stride, int64_t steps,
          Out out, int64_t ld, int64_t cols, Fetch fetch) {
  Vec acc[rows][2 * panels];
  for (int r = 0; r < rows; ++r) {
    for (int v = 0; v < 2 * panels; ++v) acc[r][v] = zeros();
  }
  for (int64_t s = 0; s < steps; ++s) {
    fetch.step();
    Vec w[2 * panels];
    for (int g = 0; g < panels; ++g) {
      w[2 * g] = load(b + g * panel_stride + s * kCols);
      w[2 * g + 1] = load(b + g * panel_stride + s * kCols + kLanes);
    }
    for (int r = 0; r < rows; ++r) {
      const Vec x = broadcast(a[s * step + r * row]);
      for (int v = 0; v < 2 * panels; ++v) acc[r][v] = fma(x, w[v], acc[r][v]);
    }
  }
  store_tile<rows, panels>(acc, out, ld, cols, [](float* dst, Vec v) { store(dst, v); });
}

#if defined(__AVX512BF16__)
// The native instruction: a: [pairs][kRows] bf16 pairs as uint32, b: [pairs][kCols][2] bf16 per panel.
template <int rows, int panels>
void tile_dpbf16(const uint32_t* a, const uint16_t* b, int64_t panel_stride, int64_t pairs, Out out, int64_t ld,
                 int64_t cols, Fetch fetch) {
  __m512 acc[rows][2 * panels];
  for (int r = 0; r < rows; ++r) {
    for (int v = 0; v < 2 * panels; ++v) acc[r][v] = _mm512_setzero_ps();
  }
  for (int64_t p = 0; p < pairs; ++p) {
    fetch.step();
    __m512bh w[2 * panels];
    for (int g = 0; g < panels; ++g) {
      w[2 * g] = (__m512bh)_mm512_loadu_si512(b + g * panel_stride + p * kCols * 2);
      w[2 * g + 1] = (__m512bh)_mm512_loadu_si512(b + g * panel_stride + p * kCols * 2 + 32);
    }
    for (int r = 0; r < rows; ++r) {
      const __m512bh x = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[p * kRows + r]));
      for (int v = 0; v < 2 * panels; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], x, w[v]);
    }
  }
  store_tile<rows, panels>(acc, out, ld, cols, [](float* dst, __m512 v) { _mm512_storeu_ps(dst, v); });
}
#endif

#if defined(__AVX512BF16__)
// vdpbf16ps's order by FMAs, from the same panels: per pair, the odd element (the high half of its 32 bits) then
// the even one, each widened in a register; a: [steps][kRows] fp32 in the emulated step order. Under MXCSR
// DAZ|FTZ these are vdpbf16ps's bits (the AVX2 build's FMAs) at the FMA units' rate, for a few widening
// instructions that several rows amortize.
template <int rows, int panels>
void tile_pairs_fma(const float* a, const uint16_t* b, int64_t panel_stride, int64_t pairs, Out out, int64_t ld,
                    int64_t cols, Fetch fetch) {
  const __m512i high_half = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  __m512 acc[rows][2 * panels];
  for (int r = 0; r < rows; ++r) {
    for (int v = 0; v < 2 * panels; ++v) acc[r][v] = _mm512_setzero_ps();
  }
  for (int64_t p = 0; p < pairs; ++p) {
    fetch.step();
    __m512i both[2 * panels];
    for (int g = 0; g < panels; ++g) {
      both[2 * g] = _mm512_loadu_si512(b + g * panel_stride + p * kCols * 2);
      both[2 * g + 1] = _mm512_loadu_si512(b + g * panel_stride + p * kCols * 2 + 32);
    }
    for (int v = 0; v < 2 * panels; ++v) {
      const __m512 odd = _mm512_castsi512_ps(_mm512_and_si512(both[v], high_half));
      for (int r = 0; r < rows; ++r) acc[r][v] = _mm512_fmadd_ps(_mm512_set1_ps(a[2 * p * kRows + r]), odd, acc[r][v]);
    }
    for (int v = 0; v < 2 * panels; ++v) {
      const __m512 even = _mm512_castsi512_ps(_mm512_slli_epi32(both[v], 16));
      for (int r = 0; r < rows; ++r) {
        acc[r][v] = _mm512_fmadd_ps(_mm512_set1_ps(a[(2 * p + 1) * kRows + r]), even, acc[r][v]);
      }
    }
  }
  store_tile<rows, panels>(acc, out, ld, cols, [](float* dst, __m512 v) { _mm512_storeu_ps(dst, v); });
}
#endif

// The column panels of several weights as one range: panel p is weight `index`'s panel p - first[index].
struct Panels {
  std::vector<int64_t> first;  // first[i]: weight i's first panel; first.back(): all panels
  std::vector<int64_t> widths;
  explicit Panels(const std::vector<int64_t>& widths) : first{0}, widths(widths) {
    for (int64_t n : widths) first.push_back(first.back() + ceil_div(n, kCols));
  }
  int64_t total() const { return first.back(); }
  int64_t weight_of(int64_t panel) const {
    return std::upper_bound(first.begin(), first.end(), panel) - first.begin() - 1;
  }
};

// One tile call: rows x-rows from row_panel against `count` consecutive panels of one weight, from its panel
// `local`; the last of them has `cols` columns.
// next_weight >= 0: next_count panels of weight next_weight from its panel next_local come next in this thread's
// share, and this tile is part `part` of the `parts` tiles that fetch them.
struct Tile {
  int64_t row_panel, rows, weight, local, count, cols;
  int64_t next_weight = -1, next_local = 0, next_count = 0, part = 0, parts = 1;

  // This tile's part of the next panels (of `panel_size` elements each) of the packed weights `weights`.
  template <typename weight_t>
  Fetch fetch(const std::vector<const weight_t*>& weights, int64_t panel_size) const {
    if (next_weight < 0) return {};
    const char* start = reinterpret_cast<const char*>(weights[next_weight] + next_local * panel_size);
    const int64_t bytes = panel_size * next_count * static_cast<int64_t>(sizeof(weight_t));
    return {start + bytes * part / parts, start + bytes * (part + 1) / parts};
  }
};

// Panels per tile call for tiles of `rows` rows: as many as the vector registers hold (2 x rows accumulators and 2
// weight vectors per panel, one broadcast x), at most 4, so that a decode step's one row still keeps eight FMA
// chains in flight and a tile of 6 rows has 24 accumulators to hide each load behind (AVX-512).
constexpr int kVectorRegisters = kLanes == 16 ? 32 : 16;
constexpr int panels_for(int rows) { return std::clamp((kVectorRegisters - 1) / (2 * rows + 2), 1, 4); }

// Consecutive panels of one weight (at most a tile call's worth) in one row block: what a thread takes at a time.
struct Chunk {
  int64_t unit, count;  // unit: block * col_panels + the first column panel
};

// run(Tile) over every tile. Blocks of several row panels are claimed dynamically, chunk by chunk (how the rows are
// blocked may depend on the thread count; no element's sum depends on it), each thread one chunk ahead: its next
// chunk's weights are fetched while the current one computes from cache, and a core slowed by its neighbours (a VM's
// vCPUs are not all equally fast) takes fewer. A single row panel streams its weights, which the hardware prefetcher
// does best over one contiguous share per thread: each thread takes an even share of the panels, cut where a weight
// ends and otherwise into tiles of as many panels as the registers hold, where whole chunks had left one thread two
// panels more of an 18-panel weight (a tile's panels only add independent columns: no column's sum depends on how the
// panels are cut).
template <typename tile_fn>
void for_each_tile(int64_t m, const Panels& panels, bool emulated_bf16, tile_fn run) {
  const int64_t row_panels = ceil_div(m, kRows), col_panels = panels.total(), threads = at::get_num_threads();
  const int64_t group = panels_for(static_cast<int>(std::min<int64_t>(m, kRows)));
  // a chunk's panels from col_panel on: a tile call's worth, within one weight
  const auto chunk_from = [&](int64_t col_panel) {
    return std::min(group, panels.first[panels.weight_of(col_panel) + 1] - col_panel);
  };
  int64_t col_chunks = 0;  // chunks across one row block: each weight's panels, a tile call's worth at a time
  for (size_t weight = 0; weight + 1 < panels.first.size(); ++weight) {
    col_chunks += ceil_div(panels.first[weight + 1] - panels.first[weight], group);
  }
  // Row blocks of up to kPanelsPerBlock row panels, split further where few chunks would not divide evenly between the
  // threads: at 64 rows o's and down's 9 chunks left one of two threads 5 (each block then reads its weights itself,
  // which a step of 64 rows, bound by its multiplies, affords)
  int64_t blocks = ceil_div(row_panels, kPanelsPerBlock);
  if (blocks * col_chunks % threads != 0 && blocks * col_chunks < 8 * threads) {
    blocks = std::min(row_panels, blocks * threads);
  }
  const int64_t block_panels = ceil_div(row_panels, blocks);
  blocks = ceil_div(row_panels, block_panels);
  // the width of the last of `count` panels of `weight` from its panel `local` on
  const auto cols_of = [&](int64_t weight, int64_t local, int64_t count) {
    return std::min<int64_t>(kCols, panels.widths[weight] - (local + count - 1) * kCols);
  };
  const bool dynamic = row_panels > 1;
  std::vector<Chunk> chunks;  // claimed dynamically: only where there are several row panels
  for (int64_t unit = 0; dynamic && unit < blocks * col_panels;) {
    chunks.push_back({unit, chunk_from(unit % col_panels)});
    unit += chunks.back().count;
  }
  const int64_t total = static_cast<int64_t>(chunks.size());
  // one thread's even share of a single row panel's weights, streamed tile by tile
  const auto stream_share = [&](int64_t thread, int64_t team) {
    const int64_t end = col_panels * (thread + 1) / team;
    for (int64_t col_panel = col_panels * thread / team, count; col_panel < end; col_panel += count) {
      const int64_t weight = panels.weight_of(col_panel), local = col_panel - panels.first[weight];
      count = std::min(chunk_from(col_panel), end - col_panel);
      run(Tile{0, m, weight, local, count, cols_of(weight, local, count)});
    }
  };
  std::atomic<int64_t> claimed{0};
  // chunks claimed one ahead until none is left, each over its block's row panels
  const auto claim_chunks = [&] {
    for (int64_t current = claimed++, next; current < total; current = next) {
      next = claimed++;
      const Chunk chunk = chunks[current];
      const int64_t block = chunk.unit / col_panels, col_panel = chunk.unit % col_panels;
      const int64_t weight = panels.weight_of(col_panel), local = col_panel - panels.first[weight];
      const int64_t first = block * block_panels, last = std::min(row_panels, first + block_panels);
      // While a block of several row panels computes from a weight panel in cache, the next one is fetched.
      const bool fetch_next = last - first > 1 && next < total;
      const Chunk ahead = fetch_next ? chunks[next] : Chunk{0, 0};
      const int64_t next_col = ahead.unit % col_panels, next_weight = panels.weight_of(next_col);
      for (int64_t row_panel = first; row_panel < last; ++row_panel) {
        run(Tile{row_panel, std::min<int64_t>(kRows, m - row_panel * kRows), weight, local, chunk.count,
                 cols_of(weight, local, chunk.count), fetch_next ? next_weight : -1, next_col - panels.first[next_weight],
                 ahead.count, row_panel - first, last - first});
      }
    }
  };
#pragma omp parallel num_threads(threads)
  {
    Bf16Rounding rounding(emulated_bf16);
    if (dynamic) {
      claim_chunks();
    } else {
      stream_share(omp_get_thread_num(), omp_get_num_threads());
    }
  }
}

// fn(rows, count) as std::integral_constants, rows in 1..kRows and count in 1..panels_for(rows): the tiles take
// both as template arguments.
template <int rows, int count = 1, typename fn_t>
void with_count(int64_t wanted, fn_t fn) {
  if constexpr (count < panels_for(rows)) {
    if (wanted > count) return with_count<rows, count + 1>(wanted, fn);
  }
  TORCH_CHECK(wanted == count, "canonical_linears: ", wanted, " panels for a tile of ", rows, " rows");
  fn(std::integral_constant<int, rows>{}, std::integral_constant<int, count>{});
}

template <typename fn_t>
void with_shape(const Tile& t, fn_t fn) {
  switch (t.rows) {
    case 1: return with_count<1>(t.count, fn);
    case 2: return with_count<2>(t.count, fn);
    case 3: return with_count<3>(t.count, fn);
    case 4: return with_count<4>(t.count, fn);
    case 5: return with_count<5>(t.count, fn);
    default: return with_count<kRows>(t.count, fn);
  }
}

// x [M, K] -> [row_panels][steps][kRows] fp32, in the reduction's step order, zero at the pad step. The slots of
// rows past the last are left unwritten: a tile reads only its own rows.
template <typename value_t, typename source_fn>
at::Tensor pack_rows(const at::Tensor& x, int64_t steps, source_fn source) {
  const int64_t m = x.size(0), k = x.size(1), row_panels = ceil_div(m, kRows);
  auto packed = at::empty({row_panels, steps, kRows}, x.options().dtype(at::kFloat));
  const value_t* src = x.data_ptr<value_t>();
  float* dst = packed.data_ptr<float>();
  at::parallel_for(0, row_panels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t panel = begin; panel < end; ++panel) {
      for (int r = 0; r < kRows && panel * kRows + r < m; ++r) {
        const value_t* row = src + (panel * kRows + r) * k;
        for (int64_t s = 0; s < steps; ++s) {
          const int64_t kk = source(s);
          dst[(panel * steps + s) * kRows + r] = kk < k ? static_cast<float>(row[kk]) : 0.0f;
        }
      }
    }
  });
  return packed;
}

#if defined(__AVX512BF16__)
at::Tensor pack_row_pairs(const at::Tensor& x) {
  const int64_t m = x.size(0), k = x.size(1), pairs = bf16_steps(k) / 2, row_panels = ceil_div(m, kRows);
  auto packed = at::empty({row_panels, pairs, kRows}, x.options().dtype(at::kInt));  // as pack_rows: own rows only
  const at::BFloat16* src = x.data_ptr<at::BFloat16>();
  uint32_t* dst = reinterpret_cast<uint32_t*>(packed.data_ptr<int32_t>());
  at::parallel_for(0, row_panels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t panel = begin; panel < end; ++panel) {
      for (int r = 0; r < kRows && panel * kRows + r < m; ++r) {
        const at::BFloat16* row = src + (panel * kRows + r) * k;
        for (int64_t p = 0; p < pairs; ++p) {
          const uint32_t low = bf16_bits(row[2 * p]), high = 2 * p + 1 < k ? bf16_bits(row[2 * p + 1]) : 0;
          dst[(panel * pairs + p) * kRows + r] = low | (high << 16);
        }
      }
    }
  });
  return packed;
}
#endif


}  // namespace

at::Tensor pack_weight(const at::Tensor& weight) {
  TORCH_CHECK(weight.dim() == 2 && weight.is_contiguous(), "pack_weight: weight must be contiguous [N, K]");
  const int64_t n = weight.size(0), k = weight.size(1), col_panels = ceil_div(n, kCols);
  if (weight.scalar_type() == at::kFloat) {
    auto packed = at::zeros({col_panels, k, kCols}, weight.options());
    const float* src = weight.data_ptr<float>();
    float* dst = packed.data_ptr<float>();
    for (int64_t c = 0; c < n; ++c) {
      for (int64_t kk = 0; kk < k; ++kk) dst[((c / kCols) * k + kk) * kCols + c % kCols] = src[c * k + kk];
    }
    return packed;
  }
  TORCH_CHECK(weight.scalar_type() == at::kBFloat16, "pack_weight: float32 or bfloat16 weights");
  const int64_t steps = bf16_steps(k);
  auto packed = at::zeros({col_panels, steps, kCols}, weight.options().dtype(at::kShort));
  const at::BFloat16* src = weight.data_ptr<at::BFloat16>();
  uint16_t* dst = reinterpret_cast<uint16_t*>(packed.data_ptr<int16_t>());
  for (int64_t c = 0; c < n; ++c) {
    for (int64_t s = 0; s < steps; ++s) {
      // native: [panel][pair][column][2] (s = 2p + h); emulated: [panel][step][column] in the step order
      const int64_t kk = kNativeBf16 ? s : bf16_source(s);
      const int64_t at = kNativeBf16 ? ((c / kCols) * steps + (s & ~int64_t{1})) * kCols + (c % kCols) * 2 + (s & 1)
                                     : ((c / kCols) * steps + s) * kCols + c % kCols;
      if (kk < k) dst[at] = bf16_bits(src[c * k + kk]);
    }
  }
  return packed;
}

// x [M, K] against several packed weights [N_i, K] in one pass (x packed once, one thread team for all their
// panels): outputs [M, N_i] accumulated in fp32 and returned in x's dtype (bf16 rounded once, to nearest even),
// each element's bits those of a call with its weight alone.
std::vector<at::Tensor> canonical_linears(const at::Tensor& x, const std::vector<at::Tensor>& packed,
                                          const std::vector<int64_t>& widths) {
  TORCH_CHECK(x.dim() == 2 && x.is_contiguous(), "canonical_linears: x must be contiguous [M, K]");
  TORCH_CHECK(packed.size() == widths.size(), "canonical_linears: one width per packed weight");
  const int64_t m = x.size(0), k = x.size(1);
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16,
              "canonical_linears: float32 or bfloat16 x");
  const bool bf16_out = x.scalar_type() == at::kBFloat16;
  std::vector<at::Tensor> outs;
  std::vector<Out> out_data;
  for (int64_t n : widths) {
    outs.push_back(at::empty({m, n}, x.options()));
    out_data.push_back(bf16_out ? Out{nullptr, reinterpret_cast<uint16_t*>(outs.back().data_ptr<at::BFloat16>())}
                                : Out{outs.back().data_ptr<float>(), nullptr});
  }
  const Panels panels(widths);
  if (m == 0 || panels.total() == 0) return outs;
  // where tile t writes: its first row and column in its weight's output
  const auto out_of = [&](const Tile& t) {
    return out_data[t.weight].at(t.row_panel * kRows * widths[t.weight] + t.local * kCols);
  };
  // fp32 FMA tiles over `depth` K steps; bf16 weights (no vdpbf16ps) are widened as they are read
  auto fma_tiles = [&](const Operand& a, int64_t depth, const auto& weight_data, bool emulated_bf16) {
    for_each_tile(m, panels, emulated_bf16, [&](const Tile& t) {
      with_shape(t, [&](auto rows, auto count) {
        tile<decltype(rows)::value, decltype(count)::value>(
            a.of(t.row_panel), a.step, a.row, weight_data[t.weight] + t.local * depth * kCols, depth * kCols,
            depth, out_of(t), widths[t.weight], t.cols, t.fetch(weight_data, depth * kCols));
      });
    });
  };
  if (x.scalar_type() == at::kFloat) {
    for (const auto& p : packed) {
      TORCH_CHECK(p.scalar_type() == at::kFloat && p.size(1) == k, "canonical_linears: packed fp32 [.., K, ..]");
    }
    std::vector<const float*> weight_data;
    for (const auto& p : packed) weight_data.push_back(p.data_ptr<float>());
    fma_tiles(Operand::rows_of(x), k, weight_data, false);
    return outs;
  }
  const int64_t steps = bf16_steps(k);
  for (const auto& p : packed) {
    TORCH_CHECK(p.scalar_type() == at::kShort, "canonical_linears: bf16 x needs bf16 weights");
    TORCH_CHECK(p.size(1) == steps, "canonical_linears: packed weight has another K");
  }
  std::vector<const uint16_t*> weight_data;
  for (const auto& p : packed) weight_data.push_back(reinterpret_cast<const uint16_t*>(p.data_ptr<int16_t>()));
#if defined(__AVX512BF16__)
  if (m > kNativeBf16Rows) {
    const auto a = pack_rows<at::BFloat16>(x, steps, bf16_source);
    const float* a_data = a.data_ptr<float>();
    for_each_tile(m, panels, true, [&](const Tile& t) {
      with_shape(t, [&](auto rows, auto count) {
        tile_pairs_fma<decltype(rows)::value, decltype(count)::value>(
            a_data + t.row_panel * steps * kRows, weight_data[t.weight] + t.local * steps * kCols, steps * kCols,
            steps / 2, out_of(t), widths[t.weight], t.cols, t.fetch(weight_data, steps * kCols));
      });
    });
    return outs;
  }
  const auto a = pack_row_pairs(x);
  const uint32_t* a_data = reinterpret_cast<const uint32_t*>(a.data_ptr<int32_t>());
  const int64_t pairs = steps / 2;
  for_each_tile(m, panels, false, [&](const Tile& t) {
    with_shape(t, [&](auto rows, auto count) {
      tile_dpbf16<decltype(rows)::value, decltype(count)::value>(
          a_data + t.row_panel * pairs * kRows, weight_data[t.weight] + t.local * steps * kCols, steps * kCols, pairs,
          out_of(t), widths[t.weight], t.cols, t.fetch(weight_data, steps * kCols));
    });
  });
#else
  const auto a = pack_rows<at::BFloat16>(x, steps, bf16_source);
  fma_tiles(Operand::packed(a), steps, weight_data, true);
#endif
  return outs;
}

std::string matmul_isa() {
  return kNativeBf16 ? "avx512_bf16" : (kLanes == 16 ? "avx512f" : "avx2");
}
