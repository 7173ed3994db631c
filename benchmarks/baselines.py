"""The comparisons graphnet is measured against: hand-written numpy, and (when
installed) PyTorch eager and JAX jit. Each builds one MLP and exposes
``step()``: forward, the loss value, backward and one optimizer update.

The numpy baseline is what a careful person writes by hand: float32, manual
backprop, and a per-parameter Adam (or SGD) done fully in place with one
scratch buffer per parameter, so the optimizer makes no temporaries.
"""

import math

import numpy as np


def init_params(sizes, seed=0, dtype=np.float32):
    """Glorot-uniform weights (in, out) and zero biases, as graphnet's dense."""
    rng = np.random.default_rng(seed)
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        params.append(rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(dtype))
        params.append(np.zeros(fan_out, dtype=dtype))
    return params


def make_data(sizes, batch, loss, seed=1):
    """A fixed random batch: float32 x, and float targets (mse) or int64 labels."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, sizes[0])).astype(np.float32)
    if loss == "mse":
        y = rng.normal(size=(batch, sizes[-1])).astype(np.float32)
    else:
        y = rng.integers(0, sizes[-1], size=batch).astype(np.int64)
    return x, y


class NumpyAdam:
    """Per-parameter Adam (torch's form, eps outside the root), fully in place."""

    def __init__(self, params, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr, self.b1, self.b2, self.eps = lr, beta1, beta2, eps
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.tmp = [np.empty_like(p) for p in params]
        self.t = 0

    def step(self, params, grads):
        self.t += 1
        b1, b2 = self.b1, self.b2
        c1 = self.lr / (1 - b1 ** self.t)
        c2 = 1 / math.sqrt(1 - b2 ** self.t)
        for p, g, m, v, tmp in zip(params, grads, self.m, self.v, self.tmp):
            m *= b1
            np.multiply(g, 1 - b1, out=tmp)
            m += tmp
            v *= b2
            np.multiply(g, g, out=tmp)
            tmp *= 1 - b2
            v += tmp
            np.sqrt(v, out=tmp)
            tmp *= c2
            tmp += self.eps
            np.divide(m, tmp, out=tmp)
            tmp *= c1
            p -= tmp


class NumpySGD:
    """theta -= lr * g, in place with a scratch buffer."""

    def __init__(self, params, lr=1e-3):
        self.lr = lr
        self.tmp = [np.empty_like(p) for p in params]

    def step(self, params, grads):
        for p, g, tmp in zip(params, grads, self.tmp):
            np.multiply(g, self.lr, out=tmp)
            p -= tmp


class NumpyMLP:
    """A dense MLP with manual backprop; hidden activation tanh or relu."""

    def __init__(self, sizes, act, loss, x, y, optimizer="adam", lr=1e-3, seed=0):
        self.params = init_params(sizes, seed)
        self.act, self.loss, self.x, self.y = act, loss, x, y
        cls = NumpyAdam if optimizer == "adam" else NumpySGD
        self.opt = cls(self.params, lr=lr)
        self.rows = np.arange(len(x))

    def forward(self, x):
        """Hidden activations (x first) and the logits."""
        hs = [x]
        n = len(self.params) // 2
        h = x
        for i in range(n):
            w, b = self.params[2 * i], self.params[2 * i + 1]
            z = h @ w
            z += b
            if i < n - 1:
                if self.act == "tanh":
                    np.tanh(z, out=z)
                else:
                    np.maximum(z, 0, out=z)
                hs.append(z)
            h = z
        return hs, h

    def step(self):
        hs, z = self.forward(self.x)
        y = self.y
        if self.loss == "mse":
            dz = z - y
            loss = float(np.dot(dz.ravel(), dz.ravel())) / dz.size
            dz *= 2.0 / dz.size
        else:
            z -= z.max(axis=1, keepdims=True)
            e = np.exp(z)
            s = e.sum(axis=1, keepdims=True)
            loss = float(np.log(s).sum() - z[self.rows, y].sum()) / len(y)
            e /= s
            e[self.rows, y] -= 1
            e *= 1.0 / len(y)
            dz = e
        n = len(self.params) // 2
        grads = [None] * (2 * n)
        for i in reversed(range(n)):
            grads[2 * i] = hs[i].T @ dz
            grads[2 * i + 1] = dz.sum(axis=0)
            if i > 0:
                dh = dz @ self.params[2 * i].T
                h = hs[i]
                if self.act == "tanh":
                    dh *= 1 - h * h
                else:
                    dh *= h > 0
                dz = dh
        self.opt.step(self.params, grads)
        return loss

    def predict(self, x):
        return self.forward(x)[1]


class NumpyFewestCallsMLP:
    """The same MLP in the fewest numpy calls we know how to write by hand.

    Every array is preallocated and written with ``out=``; the params and the
    gradients are views into one flat array each, so that Adam is one pass per
    operation over all of them; each layer's bias is folded into its weight
    product (the input gets a column of ones, and since a weight and its bias lie
    side by side in the flat array, ``[weight; bias]`` is one matrix), so that one
    product gives the layer's output and one its weight and bias gradients; np.dot
    is used (a call cheaper than np.matmul on small arrays), softmax cross-entropy
    is fused, and the first layer computes no input gradient. Nobody trains this
    way: it measures what the numpy calls of a step cost, the floor of an engine
    that runs on them.
    """

    def __init__(self, sizes, act, loss, x, y, optimizer="adam", lr=1e-3, seed=0):
        params = init_params(sizes, seed)
        size = sum(p.size for p in params)
        self.flat, self.gflat = np.empty(size, np.float32), np.zeros(size, np.float32)
        self.w, self.wb, self.gwb, at = [], [], [], 0
        for fan_in, units, (w, b) in zip(sizes, sizes[1:], zip(params[::2], params[1::2])):
            n = (fan_in + 1) * units
            self.wb.append(self.flat[at:at + n].reshape(fan_in + 1, units))
            self.gwb.append(self.gflat[at:at + n].reshape(fan_in + 1, units))
            self.wb[-1][:-1], self.wb[-1][-1] = w, b
            self.w.append(self.wb[-1][:-1])
            at += n
        batch = len(x)
        self.x, self.y, self.act, self.loss, self.lr = x, y, act, loss, lr
        self.z = [np.empty((batch, n), np.float32) for n in sizes[1:]]
        self.h1 = [np.ones((batch, n + 1), np.float32) for n in sizes[:-1]]  # [h, 1]
        self.h = [a[:, :-1] for a in self.h1]
        self.dh = [np.empty((batch, n), np.float32) for n in sizes[:-1]]
        self.tmp = [np.empty((batch, n), np.float32) for n in sizes[:-1]]
        self.rows = np.arange(batch)
        self.row = np.empty((batch, 1), np.float32)
        self.mv = np.zeros((2, size), np.float32)
        self.buf = np.empty((2, size), np.float32)
        self.betas = np.array([[0.9], [0.999]], np.float32)
        self.coefs = np.array([[0.1], [0.001]], np.float32)
        self.t, self.adam = 0, optimizer == "adam"

    def step(self):
        z, h1, h, n = self.z, self.h1, self.h, len(self.z)
        np.copyto(h[0], self.x)            # a new batch comes in every step
        for i in range(n):
            np.dot(h1[i], self.wb[i], out=z[i])
            if i < n - 1:
                if self.act == "tanh":
                    np.tanh(z[i], out=h[i + 1])
                else:
                    np.maximum(z[i], 0, out=h[i + 1])
        dz, y = z[-1], self.y
        if self.loss == "mse":
            dz -= y
            loss = float(np.dot(dz.ravel(), dz.ravel())) / dz.size
            dz *= 2.0 / dz.size
        else:
            np.max(dz, axis=1, keepdims=True, out=self.row)
            dz -= self.row
            picked = dz[self.rows, y].sum()
            np.exp(dz, out=dz)
            np.sum(dz, axis=1, keepdims=True, out=self.row)
            loss = float(np.log(self.row).sum() - picked) / len(y)
            dz /= self.row
            dz[self.rows, y] -= 1
            dz *= 1.0 / len(y)
        for i in reversed(range(n)):
            np.dot(h1[i].T, dz, out=self.gwb[i])
            if i > 0:
                dh, t = self.dh[i], self.tmp[i]
                np.dot(dz, self.w[i].T, out=dh)
                if self.act == "tanh":
                    np.multiply(h[i], h[i], out=t)
                    np.subtract(1, t, out=t)
                    dh *= t
                else:
                    np.greater(h[i], 0, out=t)
                    dh *= t
                dz = dh
        self.update()
        return loss

    def update(self):
        mv, buf, g = self.mv, self.buf, self.gflat
        if not self.adam:
            np.multiply(g, self.lr, out=buf[0])
            self.flat -= buf[0]
            return
        self.t += 1
        c2 = math.sqrt(1 - 0.999 ** self.t)
        mv *= self.betas
        np.multiply(g, self.coefs, out=buf)
        buf[1] *= g
        mv += buf
        b = buf[0]
        np.sqrt(mv[1], out=b)
        b += 1e-8 * c2
        np.divide(mv[0], b, out=b)
        b *= self.lr * c2 / (1 - 0.9 ** self.t)
        self.flat -= b

    def predict(self, x):
        h = x
        for i, wb in enumerate(self.wb):
            h = h @ wb[:-1] + wb[-1]
            if i < len(self.wb) - 1:
                h = np.tanh(h) if self.act == "tanh" else np.maximum(h, 0)
        return h


class TorchMLP:
    """The same MLP in PyTorch eager on the CPU, with torch.optim."""

    def __init__(self, sizes, act, loss, x, y, optimizer="adam", lr=1e-3, seed=0):
        import torch
        self.torch = torch
        layers = []
        params = init_params(sizes, seed)
        for i in range(len(sizes) - 1):
            lin = torch.nn.Linear(sizes[i], sizes[i + 1])
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(params[2 * i].T.copy()))
                lin.bias.copy_(torch.from_numpy(params[2 * i + 1]))
            layers.append(lin)
            if i < len(sizes) - 2:
                layers.append(torch.nn.Tanh() if act == "tanh" else torch.nn.ReLU())
        self.net = torch.nn.Sequential(*layers)
        self.x = torch.from_numpy(x)
        self.y = torch.from_numpy(y)
        self.loss_fn = (torch.nn.functional.mse_loss if loss == "mse"
                        else torch.nn.functional.cross_entropy)
        cls = torch.optim.Adam if optimizer == "adam" else torch.optim.SGD
        self.opt = cls(self.net.parameters(), lr=lr)

    def step(self):
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.net(self.x), self.y)
        loss.backward()
        self.opt.step()
        return loss.item()

    def predict(self, x):
        with self.torch.no_grad():
            return self.net(self.torch.from_numpy(x)).numpy()


class JaxMLP:
    """The same MLP as one jitted JAX step with optax (params and state donated); the
    loss is read back to the host every step, as a loop that prints or checks it does."""

    def __init__(self, sizes, act, loss, x, y, optimizer="adam", lr=1e-3, seed=0):
        import jax
        import jax.numpy as jnp
        import optax
        self.jax = jax
        params = [jnp.asarray(p) for p in init_params(sizes, seed)]
        f = jnp.tanh if act == "tanh" else jax.nn.relu

        def net(ps, x):
            h = x
            for i in range(0, len(ps), 2):
                h = h @ ps[i] + ps[i + 1]
                if i < len(ps) - 2:
                    h = f(h)
            return h

        def loss_fn(ps, x, y):
            z = net(ps, x)
            if loss == "mse":
                return jnp.mean((z - y) ** 2)
            return optax.softmax_cross_entropy_with_integer_labels(z, y).mean()

        tx = optax.adam(lr) if optimizer == "adam" else optax.sgd(lr)

        def step(ps, state, x, y):
            value, g = jax.value_and_grad(loss_fn)(ps, x, y)
            updates, state = tx.update(g, state, ps)
            return optax.apply_updates(ps, updates), state, value

        self._step = jax.jit(step, donate_argnums=(0, 1))
        self._net = jax.jit(net)
        self.ps = params
        self.state = tx.init(params)
        self.x, self.y = jnp.asarray(x), jnp.asarray(y)

    def step(self):
        self.ps, self.state, value = self._step(self.ps, self.state, self.x, self.y)
        return float(value)

    def predict(self, x):
        return self._net(self.ps, x).block_until_ready()


class JaxDeviceMLP(JaxMLP):
    """JAX as its fastest loop runs: the loss stays on the device, no host sync per
    step; ``sync()`` waits for the queued steps (the timer calls it once per round)."""

    def step(self):
        self.ps, self.state, self.value = self._step(self.ps, self.state, self.x, self.y)
        return self.value

    def sync(self):
        self.jax.block_until_ready((self.ps, self.value))
