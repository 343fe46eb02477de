"""2-D convolutions (NCHW) by im2col: one patch matrix, one matmul.

A convolution layer (a cross-correlation, as in PyTorch) maps x of shape
(N, C_in, H, W) with weights W of shape (C_out, C_in, k, k) to

    y[n, o, p, q] = b[o] + Σ_{c,i,j} W[o, c, i, j] · x_pad[n, c, s·p + i, s·q + j]

where x_pad is x with ``padding`` zeros on each side of H and W and s is the stride.

im2col gathers, for each kernel offset (i, j), the strided view
x_pad[n, c, i + s·p, j + s·q] into one patch matrix X_col of shape
(N·H_out·W_out, k²·C_in). Then the layer is one matmul,

    Y = X_col W_matᵀ + b,        W_mat[o, (i, j, c)] = W[o, c, i, j]  (shape C_out × k²·C_in),

and its VJP is two matmuls and col2im, the transpose (adjoint) of im2col:

    g_W_mat = G_matᵀ X_col,   g_b = Σ_rows G_mat,   g_x = col2im(G_mat W_mat).

Inside the layer the image is kept channels-last (N, H, W, C) so that the patch
matrix is a plain reshape of the stacked views; inputs and outputs are NCHW. On the CPU
the batch is taken a block of samples at a time (:func:`sample_blocks`), so that each
block's patch matrix stays in cache; the rows of X_col are the samples', so the blocks'
products are the rows of the one product, and g_W_mat is their sum over the blocks.
"""

import numpy as np

from ..backend import array_module, concatenate
from ..errors import InputError
from .dense import uniform_init


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def output_size(size, kernel_size, stride, padding):
    """Length of the output along one spatial axis: ⌊(size + 2p − k)/s⌋ + 1."""
    return (size + 2 * padding - kernel_size) // stride + 1


def _pad_hw(x, before_h, after_h, before_w, after_w):
    """Zero-pad axes 1 and 2 (H and W) of a channels-last array (N, H, W, ...)."""
    if before_h == after_h == before_w == after_w == 0:
        return x
    xp = array_module(x)
    widths = [(0, 0), (before_h, after_h), (before_w, after_w)] + [(0, 0)] * (x.ndim - 3)
    return xp.pad(x, widths, mode="constant")


def im2col(x_pad, kernel_size, stride, h_out, w_out):
    """The patch matrix of a padded channels-last image.

    Parameters
    ----------
    x_pad : array, shape (N, H_pad, W_pad, C)
    kernel_size, stride, h_out, w_out : int

    Returns
    -------
    cols : array, shape (N·h_out·w_out, k²·C)
        Row (n, p, q), column (i, j, c) holds x_pad[n, s·p + i, s·q + j, c].

    The k² strided views are stacked before the channel axis, so each view is copied
    in runs of C contiguous numbers (stacking them after it, as columns (c, i, j),
    writes one number every k² places and was 2–3× slower at 64 channels).
    """
    xp = array_module(x_pad)
    n, _, _, c = x_pad.shape
    h_span = stride * (h_out - 1) + 1       # rows i, i+s, ..., i+s(h_out-1)
    w_span = stride * (w_out - 1) + 1
    views = [x_pad[:, i:i + h_span:stride, j:j + w_span:stride, :]    # (N, h_out, w_out, C)
             for i in range(kernel_size) for j in range(kernel_size)]
    patches = xp.stack(views, axis=3)                                  # (N, h_out, w_out, k², C)
    return xp.reshape(patches, (n * h_out * w_out, kernel_size ** 2 * c))


def col2im(g_cols, x_pad_shape, kernel_size, stride, h_out, w_out):
    """The transpose of :func:`im2col`: scatter-add patch gradients back onto the image.

    Kernel offset (i, j) read x_pad at rows i + s·p and columns j + s·q, so its patch
    gradient g[:, :, :, i, j, :] belongs there:

        g_x_pad[n, i + s·p, j + s·q, c] += g_cols[(n, p, q), (i, j, c)]   for every i, j.

    Parameters
    ----------
    g_cols : array, shape (N·h_out·w_out, k²·C)
    x_pad_shape : tuple (N, H_pad, W_pad, C)

    Returns
    -------
    g_x_pad : array, shape x_pad_shape
    """
    g_x_pad = array_module(g_cols).zeros(x_pad_shape, dtype=g_cols.dtype)
    col2im_add(g_cols, g_x_pad, kernel_size, stride, h_out, w_out)
    return g_x_pad


def col2im_add(g_cols, g_x_pad, kernel_size, stride, h_out, w_out):
    """:func:`col2im`, added in place into ``g_x_pad`` (N, H_pad, W_pad, C).

    This is the one function of the layer that writes in place: k² strided ``+=`` into
    the image (the textbook col2im). The out-of-place alternative (a shifted,
    zero-padded full-size copy per offset, added up) took 1.1–3× as long for the
    Table 1 convolutions. A VJP is not traced by autograd, so the write is safe; a
    backend without in-place addition cannot run it. Each ``+=`` is on a view of the
    window: ``g_x_pad[window] += ...`` would also write the window back (on CuPy a second
    kernel per offset).
    """
    n, _, _, c = g_x_pad.shape
    k, s = kernel_size, stride
    g = array_module(g_cols).reshape(g_cols, (n, h_out, w_out, k, k, c))
    h_span, w_span = s * (h_out - 1) + 1, s * (w_out - 1) + 1
    for i in range(k):
        for j in range(k):
            window = g_x_pad[:, i:i + h_span:s, j:j + w_span:s, :]     # a view into g_x_pad
            window += g[:, :, :, i, j, :]       # in place: no write-back of the window


#: Bytes of patch matrix per block of samples on the CPU: a block's X_col (and its
#: gradient) stays in a core's cache instead of streaming through memory. The 64→64,
#: 4×4, stride 2 stem convolution of Table 1 at batch 128 (an 88 MB patch matrix),
#: forward + VJP on the development machine (4 MB L2 per core): about 195 ms in one
#: block, 135 ms in blocks of 8 samples (this size); any size from 1 to 12 MB did as
#: well, 24 MB worse (benchmarks/README.md).
CPU_BLOCK_BYTES = 6 * 2 ** 20


def sample_blocks(x, sample_bytes):
    """Slices of the batch axis of x, blocks of samples whose patch matrices together
    hold about CPU_BLOCK_BYTES (at least one sample per block).

    On NumPy only (traced autograd arrays included); any other array module — CuPy, the
    strict device arrays — gets the whole batch as one block: on a GPU the cost of a
    convolution is its kernel launches, which blocks would multiply, not cache misses.
    """
    n = x.shape[0]
    if array_module(x).__name__ not in ("numpy", "autograd.numpy"):
        return [slice(0, n)]
    size = max(1, CPU_BLOCK_BYTES // max(sample_bytes, 1))
    return [slice(a, min(a + size, n)) for a in range(0, max(n, 1), size)]   # n = 0: one


class Conv2d:
    """2-D convolution, NCHW: y = W ⋆ x + b (cross-correlation, PyTorch's convention).

    ``theta = {"W": (c_out, c_in, k, k), "b": (c_out,)}`` (no ``"b"`` if ``bias=False``).

    Parameters
    ----------
    c_in, c_out : int
        Input and output channels.
    kernel_size : int
        Square kernel side k.
    stride : int
    padding : int
        Zeros added on every side of H and W.
    bias : bool
    """

    def __init__(self, c_in, c_out, kernel_size, stride=1, padding=0, bias=True):
        self.c_in = _check_int("c_in", c_in, 1)
        self.c_out = _check_int("c_out", c_out, 1)
        self.kernel_size = _check_int("kernel_size", kernel_size, 1)
        self.stride = _check_int("stride", stride, 1)
        self.padding = _check_int("padding", padding, 0)
        self.bias = bool(bias)

    def init(self, rng, dtype=np.float64):
        """PyTorch's default: W and b ~ U(−1/√fan_in, 1/√fan_in), fan_in = c_in·k².

        (torch.nn.Conv2d.reset_parameters: kaiming_uniform_ with a = √5 gives this bound.)
        """
        fan_in = self.c_in * self.kernel_size ** 2
        shape = (self.c_out, self.c_in, self.kernel_size, self.kernel_size)
        theta = {"W": uniform_init(rng, fan_in, shape, dtype)}
        if self.bias:
            theta["b"] = uniform_init(rng, fan_in, (self.c_out,), dtype)
        return theta

    def output_shape(self, x_shape):
        """(N, c_out, H_out, W_out) for an input of shape (N, c_in, H, W)."""
        n, _, h, w = x_shape
        k, s, p = self.kernel_size, self.stride, self.padding
        return (n, self.c_out, output_size(h, k, s, p), output_size(w, k, s, p))

    def _check_input(self, x):
        shape = np.shape(x)
        if len(shape) != 4 or shape[1] != self.c_in:
            raise InputError(f"{self!r} expects x of shape (N, {self.c_in}, H, W); got {shape}")
        if min(self.output_shape(shape)[2:]) < 1:
            raise InputError(f"{self!r}: the image {shape[2:]} is smaller than the kernel; "
                             "use a larger image, more padding or a smaller kernel")

    def _w_mat(self, W):
        """W (c_out, c_in, k, k) as the matrix W_mat (c_out, k²·c_in), columns (i, j, c)."""
        xp = array_module(W)
        return xp.reshape(xp.transpose(W, (0, 2, 3, 1)), (self.c_out, -1))

    def forward(self, theta, t, x):
        """y = X_col W_matᵀ + b. x: (N, c_in, H, W) -> y: (N, c_out, H_out, W_out).

        Computed block by block of samples (:func:`sample_blocks`); the cache keeps the
        padded image, from which the VJP rebuilds each block's patches.
        """
        self._check_input(x)
        xp = array_module(x, theta)
        _, _, h_out, w_out = self.output_shape(x.shape)
        p = self.padding
        x_pad = _pad_hw(xp.transpose(x, (0, 2, 3, 1)), p, p, p, p)     # (N, H+2p, W+2p, c_in)
        W_mat_T = xp.transpose(self._w_mat(theta["W"]))                # (k²·c_in, c_out)
        y = concatenate([xp.matmul(self._cols(x_pad[block], h_out, w_out), W_mat_T)
                         for block in self._blocks(x_pad, h_out, w_out)])
        if self.bias:                                                  # y: (N·H_out·W_out, c_out)
            y = y + theta["b"]
        y = xp.reshape(y, (x.shape[0], h_out, w_out, self.c_out))
        return xp.transpose(y, (0, 3, 1, 2)), {"x_pad": x_pad}

    def vjp(self, theta, cache, g):
        """g: (N, c_out, H_out, W_out) -> (g_x, {"W", "b"}, 0.0); see the module docstring.

        Block by block of samples, as the forward pass: each block's patches X_col are
        rebuilt from the cached image, g_W_mat accumulates G_matᵀ X_col over the blocks.
        """
        xp = array_module(g, theta)
        x_pad = cache["x_pad"]
        _, _, h_out, w_out = g.shape
        G_mat = xp.reshape(xp.transpose(g, (0, 2, 3, 1)), (-1, self.c_out))
        W_mat = self._w_mat(theta["W"])
        rows = h_out * w_out                                           # G_mat rows per sample
        g_W_mat, g_x_pad = None, xp.zeros(x_pad.shape, dtype=g.dtype)
        for block in self._blocks(x_pad, h_out, w_out):
            G_block = G_mat[block.start * rows:block.stop * rows]
            g_W_block = xp.matmul(xp.transpose(G_block), self._cols(x_pad[block], h_out, w_out))
            g_W_mat = g_W_block if g_W_mat is None else g_W_mat + g_W_block
            col2im_add(xp.matmul(G_block, W_mat), g_x_pad[block], self.kernel_size,
                       self.stride, h_out, w_out)
        k = self.kernel_size
        g_W = xp.reshape(g_W_mat, (self.c_out, k, k, self.c_in))       # [o, i, j, c]
        g_theta = {"W": xp.transpose(g_W, (0, 3, 1, 2))}
        if self.bias:
            g_theta["b"] = xp.sum(G_mat, axis=0)
        _, h_pad, w_pad, _ = x_pad.shape
        p = self.padding
        g_x = g_x_pad[:, p:h_pad - p, p:w_pad - p, :]
        return xp.transpose(g_x, (0, 3, 1, 2)), g_theta, 0.0

    def _cols(self, x_pad, h_out, w_out):
        return im2col(x_pad, self.kernel_size, self.stride, h_out, w_out)

    def _blocks(self, x_pad, h_out, w_out):
        """:func:`sample_blocks` of the batch; one sample's patch matrix holds h_out·w_out
        rows of k²·c_in numbers."""
        sample_bytes = h_out * w_out * self.kernel_size ** 2 * self.c_in * x_pad.dtype.itemsize
        return sample_blocks(x_pad, sample_bytes)

    def __repr__(self):
        return (f"Conv2d({self.c_in}, {self.c_out}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias})")


class ConcatConv2d:
    """A convolution that also sees time: conv([t·1, x]), t as an extra input channel.

    As ``ConcatConv2d`` in torchdiffeq's examples/odenet_mnist.py: a constant channel
    filled with t is put in front of the c_in channels of x, and an ordinary
    :class:`Conv2d` with c_in + 1 input channels is applied. Since ∂(t·1)/∂t = 1,

        ∂L/∂t = Σ_{n,h,w} g_in[n, 0, h, w],

    the sum of the gradient flowing into the time channel. With one time per sample,
    t of shape (N,) (``batch="independent"``), sample n's channel is filled with t_n and
    ∂L/∂t_n = Σ_{h,w} g_in[n, 0, h, w]: g_t has shape (N,), not summed.

    ``theta = {"W": (c_out, c_in + 1, k, k), "b": (c_out,)}``; input channel 0 is time.
    """

    def __init__(self, c_in, c_out, ksize=3, stride=1, padding=1):
        self.c_in = _check_int("c_in", c_in, 1)
        self.conv = Conv2d(self.c_in + 1, c_out, ksize, stride=stride, padding=padding)

    def init(self, rng, dtype=np.float64):
        return self.conv.init(rng, dtype)

    def forward(self, theta, t, x):
        """x: (N, c_in, H, W), t: scalar or (N,) -> y: (N, c_out, H_out, W_out)."""
        if np.ndim(x) != 4 or np.shape(x)[1] != self.c_in:
            raise InputError(f"{self!r} expects x of shape (N, {self.c_in}, H, W); "
                             f"got {np.shape(x)}")
        xp = array_module(x)
        x_last = xp.transpose(x, (0, 2, 3, 1))                         # (N, H, W, c_in)
        t_n = t if np.ndim(t) == 0 else xp.reshape(t, (-1, 1, 1, 1))   # per sample: (N, 1, 1, 1)
        tt = xp.ones_like(x_last[..., :1]) * t_n                       # (N, H, W, 1)
        # Joined channels-last, the layout the convolution works in (no NCHW copy).
        tx = xp.transpose(xp.concatenate([tt, x_last], axis=3), (0, 3, 1, 2))
        y, cache = self.conv.forward(theta, t, tx)
        return y, dict(cache, per_sample_t=np.ndim(t) >= 1)

    def vjp(self, theta, cache, g):
        """(g_x, {"W", "b"}, g_t) with g_t = Σ of the gradient into the time channel."""
        g_tx, g_theta, _ = self.conv.vjp(theta, cache, g)
        xp = array_module(g_tx)
        if cache["per_sample_t"]:
            return g_tx[:, 1:], g_theta, xp.sum(g_tx[:, 0], axis=(1, 2))
        return g_tx[:, 1:], g_theta, xp.sum(g_tx[:, 0])

    def __repr__(self):
        c = self.conv
        return (f"ConcatConv2d({self.c_in}, {c.c_out}, ksize={c.kernel_size}, "
                f"stride={c.stride}, padding={c.padding})")
