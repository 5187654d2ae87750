//! Dense layers' arithmetic on plain f32 slices, for the DQN update and small-batch
//! predictions: the same gemm calls as candle's CPU
//! matmul and the same element-wise formulas as its ops (so the same bits, tested), without
//! the zero-filled outputs, per-op allocations and copies of going through tensors, which
//! took about a tenth of an update (perf: memset, page clearing, memmove).

use std::cell::RefCell;

use candle_core::{CpuStorage, InplaceOp1, Layout, Tensor};

use crate::nn::values_mut;

/// A matrix operand: a slice read with a row stride and a column stride.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Mat<'a> {
    /// A row-major `rows x cols` matrix.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Mat<'a> {
        assert_eq!(data.len(), rows * cols, "a {rows} x {cols} matrix needs {} values", rows * cols);
        Mat { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// The transpose, as a view (candle's `t()`).
    pub fn t(self) -> Mat<'a> {
        Mat { rows: self.cols, cols: self.rows, row_stride: self.col_stride, col_stride: self.row_stride, ..self }
    }
}

/// `a b`, row-major, in a new vector.
pub fn matmul(a: Mat, b: Mat) -> Vec<f32> {
    written(a.rows * b.cols, |c| matmul_into(c, a, b))
}

/// `a b`, row-major, written over `c`. The call candle's CPU matmul makes with one thread
/// (strides as the views give them, alpha 0, beta 1), so the result has the same bits.
pub fn matmul_into(c: &mut [f32], a: Mat, b: Mat) {
    gemm_into(c, Order::RowMajor, a, b);
}

/// How a product's values are laid out in memory.
#[derive(Clone, Copy)]
enum Order {
    RowMajor,
    ColumnMajor,
}

/// `a b` written over `c` in `order`. gemm sums each value as one chain of fused
/// multiply-adds over the inner dimension in either layout; the tests check that the two
/// layouts give the same bits for the shapes the update uses.
fn gemm_into(c: &mut [f32], order: Order, a: Mat, b: Mat) {
    assert_eq!(a.cols, b.rows, "matmul of {}x{} by {}x{}", a.rows, a.cols, b.rows, b.cols);
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(c.len(), m * n, "a {m} x {n} product");
    let (c_row_stride, c_col_stride) = match order {
        Order::RowMajor => (n, 1),
        Order::ColumnMajor => (1, m),
    };
    // SAFETY: `Mat::new` checked that every strided index of a and b (rows x cols of a
    // contiguous slice, or its transpose) is inside its slice; c holds m x n values, either
    // layout indexes each once, and with `read_dst` false gemm writes every one of them
    // without reading any.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            c_col_stride as isize,
            c_row_stride as isize,
            false,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// A vector of `len` values, all of them written by `write` (a product), without zero-filling
/// it first.
fn written(len: usize, write: impl FnOnce(&mut [f32])) -> Vec<f32> {
    let mut c = Vec::with_capacity(len);
    // SAFETY: callers pass a `write` that writes every one of the `len` values (gemm with
    // `read_dst` false), so they are initialised before `set_len`; f32 has no invalid bits.
    unsafe {
        write(std::slice::from_raw_parts_mut(c.as_mut_ptr(), len));
        c.set_len(len);
    }
    c
}

/// Runs `fill` on a contiguous f32 CPU tensor's values, writable, in place. Large
/// gradients go to buffers allocated once and rewritten every update: a fresh 1 MB vector
/// per update cost 3-5 % of it in page faults (perf).
pub fn overwrite(t: &Tensor, fill: impl FnOnce(&mut [f32])) -> candle_core::Result<()> {
    struct Fill<F>(RefCell<Option<F>>);
    impl<F: FnOnce(&mut [f32])> InplaceOp1 for Fill<F> {
        fn name(&self) -> &'static str {
            "dense-overwrite"
        }
        fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
            let fill = self.0.borrow_mut().take().expect("an in-place op runs once");
            fill(values_mut(storage, layout)?);
            Ok(())
        }
    }
    t.inplace_op1(&Fill(RefCell::new(Some(fill))))
}

/// Weights from which a layer's forward product is split in two for the pool's threads.
const SPLIT_WEIGHTS: usize = 1 << 16;

/// candle's `Linear` forward (`x W^T + bias`), then ReLU when `relu`; `weight` is the
/// row-major `outputs x inputs` matrix.
///
/// A layer with more outputs than the batch has rows (the PNets' 512 x 512), for a batch
/// of two rows or more, gets its product column-major, transposed back while the bias is
/// added: gemm then reads `W^T` where it lies, whereas for a row-major product it first
/// copies (packs) the whole weight, a fifth of the product's time (perf). The same bits
/// either way (tested).
pub fn linear(x: Mat, weight: &[f32], bias: &[f32], relu: bool) -> Vec<f32> {
    let (rows, outputs) = (x.rows, bias.len());
    let weight_t = Mat::new(weight, outputs, x.cols).t();
    let activate = |v: f32, b: f32| {
        let sum = v + b;
        if relu {
            sum.max(0f32)
        } else {
            sum
        }
    };
    // One row is a matrix-vector product, which gemm makes without packing (and with
    // another order of sums in the column-major layout).
    if outputs <= rows || rows == 1 {
        let mut z = matmul(x, weight_t);
        for row in z.chunks_exact_mut(outputs) {
            for (v, b) in row.iter_mut().zip(bias) {
                *v = activate(*v, *b);
            }
        }
        return z;
    }
    let by_column = written(rows * outputs, |c| {
        if weight.len() < SPLIT_WEIGHTS {
            return gemm_into(c, Order::ColumnMajor, x, weight_t);
        }
        // Two halves of the outputs (each a contiguous half of c and of the weight's rows)
        // that a second thread can take: the forward product is otherwise the one piece
        // of an agent's update that cannot be shared, and with five agents on two threads
        // the last agent's kept the other thread idle.
        let half = outputs / 2;
        let (first, second) = c.split_at_mut(half * rows);
        let (upper, lower) = weight.split_at(half * x.cols);
        rayon::join(
            || gemm_into(first, Order::ColumnMajor, x, Mat::new(upper, half, x.cols).t()),
            || gemm_into(second, Order::ColumnMajor, x, Mat::new(lower, outputs - half, x.cols).t()),
        );
    });
    // Eight rows at a time: eight write streams and short contiguous reads, where a whole
    // column per pass writes rows 2 KB apart that evict each other (8 times faster).
    const BLOCK: usize = 8;
    let mut z = vec![0f32; rows * outputs];
    for first in (0..rows).step_by(BLOCK) {
        let block = BLOCK.min(rows - first);
        for (j, (column, b)) in by_column.chunks_exact(rows).zip(bias).enumerate() {
            for (i, v) in column[first..first + block].iter().enumerate() {
                z[(first + i) * outputs + j] = activate(*v, *b);
            }
        }
    }
    z
}

/// The gradient through a ReLU, in place: `grad` times 1 where the layer's output `h` is
/// positive, times 0 elsewhere (candle's compare, cast and multiply in one pass).
pub fn relu_backward(mut grad: Vec<f32>, h: &[f32]) -> Vec<f32> {
    assert_eq!(grad.len(), h.len());
    for (g, h) in grad.iter_mut().zip(h) {
        *g *= if *h > 0.0 { 1.0 } else { 0.0 };
    }
    grad
}

/// Column sums of a row-major matrix with `cols` columns, its rows added in order from
/// zero as candle's `sum(0)` does; candle's general reduction divides per element, which
/// took 8 % of an update (perf).
pub fn column_sums(data: &[f32], cols: usize) -> Vec<f32> {
    let mut sums = vec![0f32; cols];
    for row in data.chunks_exact(cols) {
        for (s, x) in sums.iter_mut().zip(row) {
            *s += x;
        }
    }
    sums
}

/// `acc += x`, element by element (candle's `acc + x`).
pub fn add_assign(acc: &mut [f32], x: &[f32]) {
    assert_eq!(acc.len(), x.len());
    for (a, b) in acc.iter_mut().zip(x) {
        *a += b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Values;
    use candle_core::{DType, Device, Module};

    fn values(n: usize, k: f32) -> Vec<f32> {
        (0..n).map(|i| ((i as f32) * k).sin() * if i % 7 == 0 { 0.0 } else { 2.5 }).collect()
    }

    fn bits(t: &Tensor) -> Vec<u32> {
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap().into_iter().map(f32::to_bits).collect()
    }

    fn bits_of(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Each helper against the candle op it replaces, bit for bit, with the layouts the
    /// update uses: plain, transposed left, transposed right. (candle's products run on
    /// several threads here and on one in `meshrl run`: gemm splits rows and columns, never
    /// the sum, so the bits do not depend on it.)
    #[test]
    fn helpers_give_candles_bits() {
        let dev = &Device::Cpu;
        let (b, i, o) = (32, 40, 24);
        let (x, w, bias, g) = (values(b * i, 0.37), values(o * i, 1.13), values(o, 2.9), values(b * o, 0.71));
        let xt = Tensor::from_slice(&x, (b, i), dev).unwrap();
        let wt = Tensor::from_slice(&w, (o, i), dev).unwrap();
        let bt = Tensor::from_slice(&bias, o, dev).unwrap();
        let gt = Tensor::from_slice(&g, (b, o), dev).unwrap();
        let layer = candle_nn::Linear::new(wt.clone(), Some(bt));
        let z = layer.forward(&xt).unwrap();
        assert_eq!(bits_of(&linear(Mat::new(&x, b, i), &w, &bias, false)), bits(&z));
        let h = z.relu().unwrap();
        let h_vec = linear(Mat::new(&x, b, i), &w, &bias, true);
        assert_eq!(bits_of(&h_vec), bits(&h));
        // g W (plain), g^T x (transposed left).
        assert_eq!(bits_of(&matmul(Mat::new(&g, b, o), Mat::new(&w, o, i))), bits(&gt.matmul(&wt).unwrap()));
        assert_eq!(bits_of(&matmul(Mat::new(&g, b, o).t(), Mat::new(&x, b, i))), bits(&gt.t().unwrap().matmul(&xt).unwrap()));
        let masked = (&gt * h.gt(0f32).unwrap().to_dtype(DType::F32).unwrap()).unwrap();
        assert_eq!(bits_of(&relu_backward(g.clone(), &h_vec)), bits(&masked));
        assert_eq!(bits_of(&column_sums(&g, o)), bits(&gt.sum(0).unwrap()));
        let mut acc = g.clone();
        add_assign(&mut acc, &h_vec);
        assert_eq!(bits_of(&acc), bits(&(&gt + &h).unwrap()));
        assert_eq!(Values::of(&wt).unwrap().get(), &w[..]);
        let buffer = Tensor::zeros((o, i), DType::F32, dev).unwrap();
        overwrite(&buffer, |c| matmul_into(c, Mat::new(&g, b, o).t(), Mat::new(&x, b, i))).unwrap();
        assert_eq!(bits(&buffer), bits(&gt.t().unwrap().matmul(&xt).unwrap()));
    }

    /// Layers wider than the batch take the column-major product: still candle's bits, for
    /// SNet's and the PNets' shapes (batch 32, hidden 512), a single row and a batch that is
    /// not a multiple of the transposition's block.
    #[test]
    fn wide_layers_give_candles_bits() {
        let dev = &Device::Cpu;
        for (b, i, o) in [(32, 5, 512), (32, 512, 512), (32, 40, 96), (1, 40, 96), (1, 512, 512), (13, 40, 96), (5, 512, 2)] {
            let (x, w, bias) = (values(b * i, 0.37), values(o * i, 1.13), values(o, 2.9));
            let layer =
                candle_nn::Linear::new(Tensor::from_slice(&w, (o, i), dev).unwrap(), Some(Tensor::from_slice(&bias, o, dev).unwrap()));
            let z = layer.forward(&Tensor::from_slice(&x, (b, i), dev).unwrap()).unwrap();
            assert_eq!(bits_of(&linear(Mat::new(&x, b, i), &w, &bias, false)), bits(&z), "{b} x {i} -> {o}");
            assert_eq!(bits_of(&linear(Mat::new(&x, b, i), &w, &bias, true)), bits(&z.relu().unwrap()), "{b} x {i} -> {o}, ReLU");
        }
    }

    #[test]
    #[should_panic(expected = "needs")]
    fn a_matrix_must_fit_its_slice() {
        Mat::new(&[1.0, 2.0, 3.0], 2, 2);
    }
}
