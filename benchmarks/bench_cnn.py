"""Training-step speed of graphnet's convolutions against PyTorch eager, side by side.

One step is forward, the loss, backward and one Adam update on a fixed batch.
The two engines run interleaved in one process, round after round, on the
same initial params and data, BLAS and torch on one thread each, so that a
noisy shared machine slows them alike; the report gives each one's median
time per step and the ratio graphnet / PyTorch.

    python benchmarks/bench_cnn.py                 # both configs, about 10 s
    python benchmarks/bench_cnn.py --configs lenet --rounds 21 --json out.json
    python benchmarks/bench_cnn.py --profile       # graphnet's time per node and direction
    python benchmarks/bench_cnn.py --conv-paths    # Winograd against im2col, shape by shape

Method: each engine is warmed up (3 steps), then the engines take turns,
``--rounds`` rounds of ``--per-round`` steps each, timed by the wall clock
(``time.perf_counter``); the report is the median time per step over the
rounds and the ratio of the medians. BLAS is pinned to one thread with
threadpoolctl and PyTorch with ``torch.set_num_threads(1)``. On a shared
machine run it when the load (``uptime``) is low, and quote the load with
the numbers: a busy neighbour slows both engines, the ratio less than the
times. ``--profile`` times every op's forward and backward alone inside
graphnet's step (the 20th percentile over the steps, in CPU time, so that
other processes count less) and adds the optimizer update; the wrappers
cost about 1 us a call. ``--conv-paths`` times one 3x3 convolution's forward and
backward (its input gradient included) through each of conv2d's two paths,
Winograd's F(2x2, 3x3) and im2col, alternating on the same inputs, and reports
the smallest of 15 rounds of each and which path conv2d takes for that shape.

Configs:
  lenet   1x28x28 -> conv 8 (3x3) -> relu -> max pool -> conv 16 (3x3) -> relu
          -> max pool -> dense 10, batch 64 (target: at most 1.0x PyTorch)
  digits  examples/models/digits_cnn.json (8x8 digits, two conv + batch norm +
          pool blocks), batch 64 (target: at most 0.5x PyTorch)

PyTorch is used only when importable (never a dependency); without it only
graphnet's times are printed.
"""

import argparse
import contextlib
import datetime
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import graphnet as gn  # noqa: E402

TARGETS = {"lenet": 1.0, "digits": 0.5}


def lenet_graph():
    g = gn.Graph("lenet")
    x = g.input("x", shape=(1, 28, 28))
    y = g.input("label", shape=(), dtype="int64")
    h = g.add("relu", g.add("conv2d", x, filters=8, kernel_size=3, name="conv1"))
    h = g.add("max_pool2d", h, name="pool1")
    h = g.add("relu", g.add("conv2d", h, filters=16, kernel_size=3, name="conv2"))
    h = g.add("max_pool2d", h, name="pool2")
    out = g.add("dense", g.add("flatten", h, name="flat"), units=10, name="logits")
    g.add("softmax_cross_entropy", out, y, name="loss")
    g.output(out)
    return g


def digits_graph():
    return gn.Graph.from_json(ROOT / "examples" / "models" / "digits_cnn.json")


CONFIGS = {"lenet": (lenet_graph, 64), "digits": (digits_graph, 64)}


def torch_twin(model, torch):
    """The same network in torch.nn, built node by node from the graphnet model, with
    graphnet's initial params copied in (dense weights transposed to torch's layout)."""
    nn = torch.nn
    layers = []
    for node in model.nodes.values():
        op, a = node.op.name, node.attrs
        if op in ("input", "softmax_cross_entropy"):
            continue
        if op == "reshape":
            layers.append(nn.Unflatten(1, tuple(node.shape)))
        elif op == "conv2d":
            c = nn.Conv2d(model.nodes[node.inputs[0]].shape[0], a["filters"], a["kernel_size"],
                          stride=a["stride"], padding=a["padding"], bias=a["use_bias"])
            c.weight.data[...] = torch.from_numpy(model.params[f"{node.name}.weight"])
            c.bias.data[...] = torch.from_numpy(model.params[f"{node.name}.bias"])
            layers.append(c)
        elif op == "batch_norm":
            cls = nn.BatchNorm2d if len(node.shape) == 3 else nn.BatchNorm1d
            layers.append(cls(node.shape[0], eps=a["eps"], momentum=1 - a["momentum"]))
        elif op == "max_pool2d":
            layers.append(nn.MaxPool2d(a["pool_size"], a["stride"]))
        elif op == "relu":
            layers.append(nn.ReLU())
        elif op == "flatten":
            layers.append(nn.Flatten())
        elif op == "dropout":
            layers.append(nn.Dropout(a["rate"]))
        elif op == "dense":
            d = nn.Linear(model.nodes[node.inputs[0]].shape[-1], a["units"])
            d.weight.data[...] = torch.from_numpy(model.params[f"{node.name}.weight"].T.copy())
            d.bias.data[...] = torch.from_numpy(model.params[f"{node.name}.bias"])
            layers.append(d)
        else:
            raise SystemExit(f"bench_cnn has no torch twin for op {op!r}")
    return nn.Sequential(*layers)


def make_data(model, batch, seed=0):
    rng = np.random.default_rng(seed)
    shape = model.nodes[model.inputs[0]].shape
    return rng.random((batch, *shape), dtype=np.float32), rng.integers(0, 10, batch)


def steps(config):
    """One step function per engine, on the same data and initial params."""
    make_graph, batch = CONFIGS[config]
    model = gn.Model(make_graph(), seed=0)
    x, y = make_data(model, batch)
    xname, yname = model.inputs
    feeds = {xname: x, yname: y}
    opt = gn.optimizer("adam", lr=1e-3)
    state = {"grads": None}

    def graphnet_step():
        model.forward(feeds, outputs=("loss",), training=True)
        state["grads"] = model.backward(out=state["grads"])
        opt.step(model.params, state["grads"])

    engines = {"graphnet": graphnet_step}
    try:
        import torch
    except ImportError:
        return engines
    torch.set_num_threads(1)
    net = torch_twin(model, torch)
    net.train()
    topt = torch.optim.Adam(net.parameters(), lr=1e-3)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    lossf = torch.nn.CrossEntropyLoss()

    def torch_step():
        topt.zero_grad()
        lossf(net(tx), ty).backward()
        topt.step()

    engines["pytorch"] = torch_step
    return engines


def measure(config, rounds, per_round):
    engines = steps(config)
    times = {name: [] for name in engines}
    for fn in engines.values():      # warm up: plans compiled, buffers made
        for _ in range(3):
            fn()
    for _ in range(rounds):
        for name, fn in engines.items():
            t0 = time.perf_counter()
            for _ in range(per_round):
                fn()
            times[name].append((time.perf_counter() - t0) / per_round)
    result = {name: statistics.median(ts) * 1e3 for name, ts in times.items()}
    row = {"config": config, "batch": CONFIGS[config][1], "ms_per_step": result}
    if "pytorch" in result:
        row["ratio"] = result["graphnet"] / result["pytorch"]
        row["target"] = TARGETS[config]
    return row


@contextlib.contextmanager
def wrapped_ops(opnames, wrap):
    """Within: the registry's op objects of ``opnames`` (shared by every model) run
    ``wrap(method, "forward")`` and ``wrap(method, "backward")`` instead of their own
    methods, which are put back on leaving."""
    from graphnet.plugins import registry
    undo = []
    try:
        for opname in set(opnames):
            op = registry().get("op", opname)
            own = {k: vars(op)[k] for k in ("forward", "backward") if k in vars(op)}
            forward, backward = wrap(op.forward, "forward"), wrap(op.backward, "backward")
            op.forward, op.backward = forward, backward
            undo.append((op, own))
        yield
    finally:
        for op, own in undo:
            del op.forward, op.backward
            vars(op).update(own)


def profile(config, n_steps=300, warmup=20):
    """Per node and direction, the 20th percentile of the CPU time of graphnet's ops."""
    make_graph, batch = CONFIGS[config]
    graph = make_graph()
    times = {}

    def timed(node_fn, key):
        def run(ctx, *args):
            t0 = time.process_time()
            out = node_fn(ctx, *args)
            times.setdefault((ctx.node, key), []).append(time.process_time() - t0)
            return out
        return run

    with wrapped_ops([graph.nx.nodes[n]["op"] for n in graph.nx.nodes], timed):
        model = gn.Model(graph, seed=0)
        x, y = make_data(model, batch)
        feeds = dict(zip(model.inputs, (x, y)))
        opt, grads, update = gn.optimizer("adam", lr=1e-3), None, []
        for step in range(warmup + n_steps):
            if step == warmup:
                times.clear()
                update.clear()
            model.forward(feeds, outputs=("loss",), training=True)
            grads = model.backward(out=grads)
            t0 = time.process_time()
            opt.step(model.params, grads)
            update.append(time.process_time() - t0)
    rows = sorted(((float(np.percentile(v, 20)) * 1e6, node, key)
                   for (node, key), v in times.items()), reverse=True)
    total = sum(r[0] for r in rows) + float(np.percentile(update, 20)) * 1e6
    print(f"{config}: ops and update {total:.0f} us per step (20th percentile of "
          f"{n_steps} steps, CPU time)")
    for us, node, key in rows:
        print(f"  {node:10s} {key:8s} {us:7.0f} us")
    print(f"  {'adam':10s} {'update':8s} {float(np.percentile(update, 20)) * 1e6:7.0f} us")


# (C, side, filters, padding) of the shapes --conv-paths times: the digits CNN's conv2
# first, then fewer channels or filters, more channels, larger images
CONV_SHAPES = [(16, 4, 32, 1), (8, 4, 32, 1), (4, 4, 32, 1), (8, 4, 8, 1), (16, 4, 4, 1),
               (16, 4, 8, 1), (64, 4, 8, 1), (16, 6, 16, 0), (16, 8, 16, 1),
               (16, 8, 32, 1), (32, 8, 32, 1), (64, 8, 64, 1), (32, 4, 64, 1), (8, 12, 16, 1),
               (16, 12, 16, 1), (16, 14, 16, 1), (16, 16, 32, 1), (32, 16, 32, 1)]


def conv_paths(shapes=CONV_SHAPES, batch=64, rounds=15):
    """A 3x3 convolution's forward and backward (input gradient included) by Winograd and
    by im2col, on the same inputs, the two alternating; the smallest of ``rounds`` times
    of each, in us."""
    from graphnet.builtin import layers
    from graphnet.plugins import registry
    op, rows, uses_winograd = registry().get("op", "conv2d"), [], layers._uses_winograd
    for c, side, filters, pad in shapes:
        g = gn.Graph("conv")
        x, y = g.input("x", (c, side, side)), g.input("label", (), dtype="int64")
        h = g.add("batch_norm", x, name="bn0")      # so that conv needs its input gradient
        h = g.add("batch_norm", g.add("conv2d", h, filters=filters, kernel_size=3,
                                      padding=pad, name="conv"), name="bn1")
        out = g.add("dense", g.add("flatten", h, name="flat"), units=10, name="logits")
        g.add("softmax_cross_entropy", out, y, name="loss")
        model = gn.Model(g, seed=0)
        feeds = dict(zip(model.inputs, make_data(model, batch)))
        got = {}

        def keep(fn, key):
            def run(ctx, *args):
                got[key] = (ctx, args)
                return fn(ctx, *args)
            return run
        with wrapped_ops(["conv2d"], keep):
            model.forward(feeds, outputs=("loss",), training=True)
            model.backward()
        (ctx, args), (_, (dy,)) = got["forward"], got["backward"]
        ctx.param_grads = None
        best = {}
        reps = max(1, int(2e6 / (c * filters * side * side * batch)))
        for _ in range(rounds):
            for path in ("winograd", "im2col"):
                layers._uses_winograd = lambda *args, taken=(path == "winograd"): taken
                try:
                    t0 = time.perf_counter()
                    for _ in range(reps):
                        op.forward(ctx, *args)
                    t1 = time.perf_counter()
                    for _ in range(reps):
                        op.backward(ctx, dy)
                    t2 = time.perf_counter()
                finally:
                    layers._uses_winograd = uses_winograd
                times = best.setdefault(path, [float("inf")] * 2)
                times[0] = min(times[0], (t1 - t0) / reps * 1e6)
                times[1] = min(times[1], (t2 - t1) / reps * 1e6)
        ho = side + 2 * pad - 2         # even in every shape above: Winograd runs on it
        chosen = "winograd" if layers._uses_winograd(ctx.attrs, c, ho, ho) else "im2col"
        w, i = best["winograd"], best["im2col"]
        rows.append({"channels": c, "side": side, "filters": filters, "padding": pad,
                     "winograd_us": w, "im2col_us": i, "ratio": sum(w) / sum(i),
                     "chosen": chosen})
        print(f"C {c:3d}, {side:2d}x{side:<2d}, {filters:3d} filters, pad {pad}: winograd "
              f"{w[0]:6.0f} + {w[1]:6.0f} us, im2col {i[0]:6.0f} + {i[1]:6.0f} us, ratio "
              f"{sum(w) / sum(i):.2f} (conv2d takes {chosen})", flush=True)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--per-round", type=int, default=5)
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--profile", action="store_true",
                   help="time graphnet's ops one by one instead of comparing engines")
    p.add_argument("--conv-paths", action="store_true",
                   help="time 3x3 convolutions by Winograd and by im2col, shape by shape")
    args = p.parse_args(argv)
    from threadpoolctl import threadpool_limits
    rows = []
    with threadpool_limits(1):
        if args.profile:
            for config in args.configs:
                profile(config)
            return
        if args.conv_paths:
            rows = conv_paths()
            if args.json:
                Path(args.json).write_text(json.dumps({"conv_paths": rows}, indent=2) + "\n")
            return
        for config in args.configs:
            row = measure(config, args.rounds, args.per_round)
            rows.append(row)
            ms = row["ms_per_step"]
            line = f"{config:8s} batch {row['batch']}: graphnet {ms['graphnet']:.2f} ms/step"
            if "ratio" in row:
                verdict = "meets" if row["ratio"] <= row["target"] else "misses"
                line += (f", pytorch {ms['pytorch']:.2f} ms/step, ratio {row['ratio']:.2f}x "
                         f"({verdict} the target of {row['target']:.1f}x)")
            print(line, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": platform.machine(), "python": platform.python_version(),
            "numpy": np.__version__, "threads": 1, "rounds": args.rounds,
            "per_round": args.per_round, "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
