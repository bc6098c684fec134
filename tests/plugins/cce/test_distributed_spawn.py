"""Vocab-parallel and data-parallel linear cross-entropy across real processes (gloo, CPU).

ONE spawn of 4 gloo processes runs every check twice: over the 4-rank world group, and over two
independent 2-rank subgroups ({0, 1} and {2, 3}: group ranks differ from global ranks). Each rank
saves what it computed and the parent compares it with an independent single-process float64
reference (naive logits and ``torch.nn.functional.cross_entropy``).
"""

from __future__ import annotations

import math
import socket
import traceback
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

F64 = torch.float64
IGNORE = -100
WORLD = 4  # processes spawned; the checks run on groups of 4 and of 2

# Every case runs on every rank with the classifier split over the ranks (uneven: V=11 or 37
# does not divide by 2 or 4; "sizes" gives explicit splits with empty shards).
CASES: list[dict[str, Any]] = [
    dict(name="plain-mean", shape=(13,), D=7, V=11, ignore=[2, 5]),
    dict(name="bias-softcap-scale-sum", shape=(9,), D=5, V=11, bias=True, softcap=3.0,
         logit_scale=0.7, reduction="sum"),
    dict(name="smoothing-zloss-softcap-none", shape=(2, 5), D=6, V=11, bias=True, softcap=2.5,
         label_smoothing=0.1, z_loss=1e-2, reduction="none", ignore=[0, 9]),
    dict(name="smoothing-mean", shape=(8,), D=4, V=11, label_smoothing=0.2, ignore=[3]),
    dict(name="num-items", shape=(12,), D=5, V=11, num_items=17, ignore=[1, 4]),
    dict(name="empty-shards", shape=(7,), D=3, V=5, sizes={2: [5, 0], 4: [2, 0, 3, 0]},
         bias=True, label_smoothing=0.1, softcap=4.0),
    dict(name="all-ignored", shape=(6,), D=4, V=11, ignore="all", label_smoothing=0.1),
    dict(name="fp32", shape=(33,), D=16, V=37, dtype=torch.float32, softcap=10.0,
         label_smoothing=0.05, ignore=[7]),
]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Inputs and the independent reference (shared by the parent and the ranks)
# ---------------------------------------------------------------------------------------------


def make_inputs(case: dict[str, Any], seed: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    shape, D, V = case["shape"], case["D"], case["V"]
    n = math.prod(shape)
    hidden = torch.randn(*shape, D, generator=g, dtype=F64)
    classifier = torch.randn(V, D, generator=g, dtype=F64) * 0.8
    bias = torch.randn(V, generator=g, dtype=F64) if case.get("bias") else None
    targets = torch.randint(0, V, (n,), generator=g)
    ignore = case.get("ignore", [])
    targets[list(range(n)) if ignore == "all" else ignore] = IGNORE
    upstream = torch.randn(shape, generator=g, dtype=F64)  # d loss for reduction="none"
    return dict(hidden=hidden, classifier=classifier, bias=bias,
                targets=targets.reshape(shape), upstream=upstream)  # fmt: skip


def reference_loss(
    hidden: torch.Tensor,
    classifier: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    *,
    softcap: float | None = None,
    logit_scale: float = 1.0,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    reduction: str = "mean",
    num_items: float | None = None,
) -> torch.Tensor:
    """Naive float64: full logits, torch's cross_entropy, z-loss on non-ignored tokens."""
    h = hidden.reshape(-1, hidden.shape[-1])
    t = targets.reshape(-1)
    z = h @ classifier.T
    if bias is not None:
        z = z + bias
    z = z * logit_scale
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    valid = t != IGNORE
    per = F.cross_entropy(
        z, t, ignore_index=IGNORE, label_smoothing=label_smoothing, reduction="none"
    )
    per = per + z_loss * torch.logsumexp(z, dim=1).square() * valid
    if reduction == "none":
        return per.reshape(targets.shape)
    if reduction == "sum":
        return per.sum()
    denom = num_items if num_items is not None else max(int(valid.sum()), 1)
    return per.sum() / denom


def _options(case: dict[str, Any]) -> dict[str, Any]:
    keys = ("softcap", "logit_scale", "label_smoothing", "z_loss", "reduction", "num_items")
    return {k: case[k] for k in keys if k in case}


def _split_sizes(case: dict[str, Any], world: int) -> list[int]:
    if "sizes" in case:
        return case["sizes"][world]
    base, extra = divmod(case["V"], world)
    return [base + (1 if r < extra else 0) for r in range(world)]


# ---------------------------------------------------------------------------------------------
# What each rank runs
# ---------------------------------------------------------------------------------------------


def _grad_or_none(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None or t.grad is None else t.grad.detach().clone()


def _run_cases(group: Any, kernel: Any) -> dict[str, Any]:
    import torch.distributed as dist
    from xent_cce.distributed import shard_classifier, vocab_parallel_linear_cross_entropy

    world = dist.get_world_size(group)
    out: dict[str, Any] = {}
    for i, case in enumerate(CASES):
        inp = make_inputs(case, seed=100 + i)
        dtype = case.get("dtype", F64)
        sizes = _split_sizes(case, world)
        shard, start = shard_classifier(inp["classifier"].to(dtype), group, sizes=sizes)
        shard.requires_grad_(True)
        bias = None
        if inp["bias"] is not None:
            bias, _ = shard_classifier(inp["bias"].to(dtype), group, sizes=sizes)
            bias.requires_grad_(True)
        hidden = inp["hidden"].to(dtype).requires_grad_(True)
        loss, lse = vocab_parallel_linear_cross_entropy(
            hidden, shard, inp["targets"], group=group, vocab_start=start, bias_shard=bias,
            local_kernel=kernel, return_lse=True, **_options(case),
        )  # fmt: skip
        upstream = inp["upstream"].to(dtype) if loss.dim() else torch.ones((), dtype=dtype)
        (loss * upstream).sum().backward()
        out[case["name"]] = dict(
            loss=loss.detach(), lse=lse, start=start, d_hidden=_grad_or_none(hidden),
            d_shard=_grad_or_none(shard), d_bias=_grad_or_none(bias),
        )  # fmt: skip
    return out


def _run_module(group: Any) -> dict[str, Any]:
    """The ``linear-cross-entropy`` module, vocab-parallel (wired, or through module_forward)."""
    from xent_cce.distributed import module_forward, shard_classifier

    import xent_core

    case = CASES[2]
    inp = make_inputs(case, seed=102)
    opts = {k: case[k] for k in ("softcap", "label_smoothing", "z_loss", "reduction")}
    shard, start = shard_classifier(inp["classifier"], group)
    bias, _ = shard_classifier(inp["bias"], group)
    hidden = inp["hidden"].clone()
    for t in (shard, bias, hidden):
        t.requires_grad_(True)
    try:
        lce = xent_core.loss(
            "linear-cross-entropy", vocab_parallel=group, vocab_start=start, **opts
        )
        wired = True
    except xent_core.BadParameterError:  # the module does not take vocab_parallel yet
        lce = xent_core.loss("linear-cross-entropy", **opts)
        lce.vocab_parallel, lce.vocab_start = group, start
        wired = False
    args = (hidden, shard, inp["targets"], bias)
    loss = lce(*args) if wired else module_forward(lce, *args)
    (loss * inp["upstream"]).sum().backward()
    return dict(
        loss=loss.detach(), start=start, wired=wired, last_impl=lce.last_impl,
        d_hidden=_grad_or_none(hidden), d_shard=_grad_or_none(shard), d_bias=_grad_or_none(bias),
    )  # fmt: skip


def _run_bad_targets(group: Any, kernel: Any) -> dict[str, str]:
    from xent_cce.distributed import shard_classifier, vocab_parallel_linear_cross_entropy

    from xent_core import BadInputError

    inp = make_inputs(CASES[0], seed=100)
    shard, start = shard_classifier(inp["classifier"], group)
    results = {}
    for label, bad_id in (("too-large", CASES[0]["V"]), ("negative", -3)):
        targets = inp["targets"].clone()
        targets[4] = bad_id
        try:
            vocab_parallel_linear_cross_entropy(
                inp["hidden"], shard, targets, group=group, vocab_start=start, local_kernel=kernel
            )
            results[label] = "no error"
        except BadInputError as exc:
            results[label] = str(exc)
    # Overlapping shards: every rank claims rows from 0.
    try:
        vocab_parallel_linear_cross_entropy(
            inp["hidden"], shard, inp["targets"], group=group, vocab_start=0, local_kernel=kernel
        )
        results["overlap"] = "no error"
    except BadInputError as exc:
        results["overlap"] = str(exc)
    return results


def _run_dtensor(kernel: Any) -> dict[str, Any]:
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor, init_device_mesh
    from xent_cce.distributed import distributed_linear_cross_entropy

    from xent_core import BadInputError

    case = CASES[1]  # bias + softcap + scale, reduction="sum"
    inp = make_inputs(case, seed=101)
    opts = _options(case)
    # A 2-D (dp, tp) mesh over the 4 ranks, and its 1-D "tp" sub-mesh (2 ranks).
    mesh2 = init_device_mesh("cpu", (WORLD // 2, 2), mesh_dim_names=("dp", "tp"))
    mesh = mesh2["tp"]
    out: dict[str, Any] = {"tp_coordinate": mesh2.get_local_rank("tp")}

    def run(h: Any, w: Any, b: Any, **kw: Any) -> dict[str, Any]:
        loss, _ = distributed_linear_cross_entropy(
            h, w, inp["targets"], b, local_kernel=kernel, **opts, **kw
        )
        loss.backward()
        local = [x.grad.to_local() if hasattr(x.grad, "to_local") else x.grad for x in (h, w, b)]
        return dict(loss=loss.detach(), d_hidden=local[0], d_shard=local[1], d_bias=local[2])

    def leaf(t: torch.Tensor, placements: list[Any], m: Any = mesh) -> Any:
        return distribute_tensor(t, m, placements).detach().requires_grad_(True)

    # Vocab-sharded classifier + replicated hidden: the vocab-parallel path.
    out["sharded"] = run(
        leaf(inp["hidden"], [Replicate()]),
        leaf(inp["classifier"], [Shard(0)]),
        leaf(inp["bias"], [Shard(0)]),
    )
    # Replicated classifier + replicated hidden: local.
    out["replicated"] = run(
        leaf(inp["hidden"], [Replicate()]),
        leaf(inp["classifier"], [Replicate()]),
        leaf(inp["bias"], [Replicate()]),
    )
    # Plain hidden is accepted with a vocab-sharded classifier once vocab_parallel says so.
    out["plain-hidden-confirmed"] = run(
        inp["hidden"].clone().requires_grad_(True),
        leaf(inp["classifier"], [Shard(0)]),
        leaf(inp["bias"], [Shard(0)]),
        vocab_parallel=mesh.get_group(),
    )
    refusals = {
        "plain-hidden": (inp["hidden"], distribute_tensor(inp["classifier"], mesh, [Shard(0)])),
        "token-sharded-hidden": (
            distribute_tensor(inp["hidden"], mesh, [Shard(0)]),
            distribute_tensor(inp["classifier"], mesh, [Shard(0)]),
        ),
        "classifier-sharded-on-D": (
            distribute_tensor(inp["hidden"], mesh, [Replicate()]),
            distribute_tensor(inp["classifier"], mesh, [Shard(1)]),
        ),
    }
    out["refusals"] = {}
    for label, (h, w) in refusals.items():
        try:
            distributed_linear_cross_entropy(h, w, inp["targets"], local_kernel=kernel, **opts)
            out["refusals"][label] = "no error"
        except BadInputError as exc:
            out["refusals"][label] = str(exc)
    # On the 2-D mesh: rows sharded over "tp", replicated over "dp".
    rep2 = [Replicate(), Replicate()]
    out["mesh2d"] = run(
        leaf(inp["hidden"], rep2, mesh2),
        leaf(inp["classifier"], [Replicate(), Shard(0)], mesh2),
        leaf(inp["bias"], [Replicate(), Shard(0)], mesh2),
    )
    return out


class _TinyLM(torch.nn.Module):
    """hidden = tanh(embedding[x]); loss = linear cross-entropy against ``classifier``."""

    def __init__(self, embedding: torch.Tensor, classifier: torch.Tensor) -> None:
        super().__init__()
        self.embedding = torch.nn.Parameter(embedding.clone())
        self.classifier = torch.nn.Parameter(classifier.clone())

    def forward(self, x: torch.Tensor, y: torch.Tensor, num_items: Any) -> torch.Tensor:
        from xent_cce.distributed import distributed_linear_cross_entropy

        hidden = torch.tanh(self.embedding[x])
        loss, _ = distributed_linear_cross_entropy(
            hidden, self.classifier, y, num_items=num_items, local_kernel=_small_kernel()
        )
        return loss


def training_data(steps: int = 3, batch: int = 29) -> dict[str, Any]:
    g = torch.Generator().manual_seed(7)
    vin, D, V = 17, 6, 11
    y = torch.randint(0, V, (steps, batch), generator=g)
    y[torch.rand(steps, batch, generator=g) < 0.25] = IGNORE
    return dict(
        embedding=torch.randn(vin, D, generator=g, dtype=F64),
        classifier=torch.randn(V, D, generator=g, dtype=F64) * 0.5,
        x=torch.randint(0, vin, (steps, batch), generator=g), y=y, lr=0.5, steps=steps,
        softcap=3.0, label_smoothing=0.1,
    )  # fmt: skip


def _uneven_bounds(n: int, world: int) -> list[int]:
    weights = [r + 1 for r in range(world)]  # rank r gets a share proportional to r + 1
    cuts = [0]
    for w in weights:
        cuts.append(cuts[-1] + round(n * w / sum(weights)))
    cuts[-1] = n
    return cuts


def _run_ddp_training(group: Any) -> dict[str, torch.Tensor]:
    """DDP over ``group``, uneven token slices, 2 accumulated micro-batches per step."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP
    from xent_cce.distributed import global_num_items

    data = training_data()
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    model = DDP(_TinyLM(data["embedding"], data["classifier"]), process_group=group)
    opt = torch.optim.SGD(model.parameters(), lr=data["lr"])
    cuts = _uneven_bounds(data["x"].shape[1], world)
    for step in range(data["steps"]):
        x = data["x"][step, cuts[rank] : cuts[rank + 1]]
        y = data["y"][step, cuts[rank] : cuts[rank + 1]]
        n_global = global_num_items(y, group=group)  # one all-reduce per step
        halves = [(x[: len(x) // 2], y[: len(y) // 2]), (x[len(x) // 2 :], y[len(y) // 2 :])]
        for j, (xm, ym) in enumerate(halves):
            with model.no_sync() if j == 0 else nullcontext():
                # DDP averages gradients over ranks: scale by world to get the global-sum mean.
                (model(xm, ym, n_global) * world).backward()
        opt.step()
        opt.zero_grad()
    return {k: v.detach().clone() for k, v in model.module.named_parameters()}


def _run_vocab_parallel_training(group: Any) -> dict[str, Any]:
    """Replicated embedding + this rank's classifier rows, trained with the vocab-parallel loss."""
    from xent_cce.distributed import shard_classifier, vocab_parallel_linear_cross_entropy

    data = training_data()
    embedding = torch.nn.Parameter(data["embedding"].clone())
    shard, start = shard_classifier(data["classifier"], group)
    shard = torch.nn.Parameter(shard)
    opt = torch.optim.SGD([embedding, shard], lr=data["lr"])
    for step in range(data["steps"]):
        hidden = torch.tanh(embedding[data["x"][step]])
        loss = vocab_parallel_linear_cross_entropy(
            hidden, shard, data["y"][step], group=group, vocab_start=start,
            softcap=data["softcap"], label_smoothing=data["label_smoothing"],
            local_kernel=_small_kernel(),
        )  # fmt: skip
        loss.backward()
        opt.step()
        opt.zero_grad()
    return dict(embedding=embedding.detach().clone(), shard=shard.detach().clone(), start=start)


def _small_kernel() -> Any:
    from xent_cce.distributed import ChunkedShardKernel

    return ChunkedShardKernel(chunk_elements=20)  # a few rows per chunk: several chunks per shard


def _registered_kernel_name() -> str | None:
    import xent_core

    try:
        xent_core.kernel("cce-torch")
    except xent_core.UnknownComponentError:
        return None
    return "cce-torch"


def _checks(group: Any, kernel_name: str | None) -> dict[str, Any]:
    result: dict[str, Any] = {"kernels": {"builtin": _run_cases(group, _small_kernel())}}
    if kernel_name is not None:
        result["kernels"][kernel_name] = _run_cases(group, kernel_name)
    result["bad_targets"] = _run_bad_targets(group, _small_kernel())
    result["module"] = _run_module(group)
    result["ddp"] = _run_ddp_training(group)
    result["vocab_parallel_training"] = _run_vocab_parallel_training(group)
    return result


def _worker(rank: int, port: int, outdir: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    try:
        pairs = [dist.new_group([0, 1]), dist.new_group([2, 3])]  # every rank creates both
        name = _registered_kernel_name()
        result = {
            "world4": _checks(dist.group.WORLD, name),
            "world2": _checks(pairs[rank // 2], name),
            "dtensor": _run_dtensor(_small_kernel()),
        }
    except Exception:
        result = {"error": traceback.format_exc()}
    finally:
        dist.destroy_process_group()
    torch.save(result, Path(outdir) / f"rank{rank}.pt")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def spawned(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """What each of the 4 ranks computed (one spawn for the whole module)."""
    import torch.multiprocessing as mp

    outdir = tmp_path_factory.mktemp("gloo")
    mp.spawn(_worker, args=(_free_port(), str(outdir)), nprocs=WORLD, join=True)
    results = [torch.load(outdir / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    errors = [
        f"rank {r} failed:\n{res['error']}" for r, res in enumerate(results) if "error" in res
    ]
    assert not errors, "\n".join(errors)
    return results


@pytest.fixture(params=[2, 4], ids=lambda w: f"world{w}")
def ranks(request: pytest.FixtureRequest, spawned: list[dict[str, Any]]) -> Any:
    """``(world, [(rank in its group, result), ...])`` for groups of ``world`` ranks."""
    world = request.param
    return world, [(r % world, res[f"world{world}"]) for r, res in enumerate(spawned)]


# ---------------------------------------------------------------------------------------------
# Comparisons in the parent
# ---------------------------------------------------------------------------------------------


def _reference_grads(case: dict[str, Any], inp: dict[str, Any]) -> dict[str, Any]:
    h = inp["hidden"].clone().requires_grad_(True)
    w = inp["classifier"].clone().requires_grad_(True)
    b = None if inp["bias"] is None else inp["bias"].clone().requires_grad_(True)
    loss = reference_loss(h, w, b, inp["targets"], **_options(case))
    upstream = inp["upstream"] if loss.dim() else torch.ones((), dtype=F64)
    (loss * upstream).sum().backward()
    lse_z = (inp["hidden"].reshape(-1, case["D"]) @ inp["classifier"].T) + (
        0 if inp["bias"] is None else inp["bias"]
    )
    lse_z = lse_z * case.get("logit_scale", 1.0)
    if case.get("softcap") is not None:
        lse_z = case["softcap"] * torch.tanh(lse_z / case["softcap"])
    return dict(loss=loss.detach(), d_hidden=h.grad, d_classifier=w.grad,
                d_bias=None if b is None else b.grad, lse=torch.logsumexp(lse_z, dim=1))  # fmt: skip


def _close(
    actual: torch.Tensor | None, expected: torch.Tensor | None, tol: float, what: str
) -> None:
    assert (actual is None) == (expected is None), what
    if actual is None or expected is None:
        return
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} vs {expected.shape}"
    assert torch.isfinite(actual).all(), f"{what}: non-finite values"
    scale = max(1.0, float(expected.abs().max())) if expected.numel() else 1.0
    err = float((actual.double() - expected).abs().max()) if expected.numel() else 0.0
    assert err <= tol * scale, f"{what}: max abs error {err:.3g} > {tol * scale:.3g}"


@pytest.mark.parametrize("kernel", ["builtin", "cce-torch"])
def test_loss_lse_and_both_gradients_match_float64(ranks: Any, kernel: str) -> None:
    world, results = ranks
    if kernel not in results[0][1]["kernels"]:
        pytest.skip(f"kernel {kernel!r} is not registered yet; the built-in one was checked")
    for i, case in enumerate(CASES):
        ref = _reference_grads(case, make_inputs(case, seed=100 + i))
        sizes = _split_sizes(case, world)
        tol = 1e-10 if case.get("dtype", F64) == F64 else 2e-5
        for r, res in results:
            got = res["kernels"][kernel][case["name"]]
            what = f"{case['name']} world={world} rank={r} kernel={kernel}"
            start = sum(sizes[:r])
            assert got["start"] == start, what
            rows = slice(start, start + sizes[r])
            _close(got["loss"], ref["loss"], tol, f"{what}: loss")
            valid = make_inputs(case, seed=100 + i)["targets"].reshape(-1) != IGNORE
            ref_lse = torch.where(valid, ref["lse"], torch.zeros_like(ref["lse"]))
            _close(got["lse"], ref_lse, max(tol, 1e-6), f"{what}: lse (0 where ignored)")
            _close(got["d_hidden"], ref["d_hidden"], tol, f"{what}: d_hidden")
            _close(got["d_shard"], ref["d_classifier"][rows], tol, f"{what}: d_classifier rows")
            if ref["d_bias"] is not None:
                _close(got["d_bias"], ref["d_bias"][rows], tol, f"{what}: d_bias rows")


def test_linear_cross_entropy_module_runs_vocab_parallel(ranks: Any) -> None:
    world, results = ranks
    case = CASES[2]
    ref = _reference_grads(case, make_inputs(case, seed=102))
    sizes = _split_sizes(case, world)
    for r, res in results:
        got, what = res["module"], f"module world={world} rank={r}"
        rows = slice(got["start"], got["start"] + sizes[r])
        assert got["start"] == sum(sizes[:r]), what
        assert got["last_impl"].endswith("(vocab-parallel)"), got["last_impl"]
        _close(got["loss"], ref["loss"], 1e-10, f"{what}: loss")
        _close(got["d_hidden"], ref["d_hidden"], 1e-10, f"{what}: d_hidden")
        _close(got["d_shard"], ref["d_classifier"][rows], 1e-10, f"{what}: d_classifier")
        _close(got["d_bias"], ref["d_bias"][rows], 1e-10, f"{what}: d_bias")


def test_all_ignored_gives_zero_loss_and_zero_gradients(ranks: Any) -> None:
    _, results = ranks
    for _r, res in results:
        got = res["kernels"]["builtin"]["all-ignored"]
        assert float(got["loss"]) == 0.0
        assert torch.count_nonzero(got["d_hidden"]) == 0
        assert torch.count_nonzero(got["d_shard"]) == 0


def test_bad_targets_and_overlapping_shards_raise_on_every_rank(ranks: Any) -> None:
    _, results = ranks
    for _r, res in results:
        bad = res["bad_targets"]
        assert "target 11 of token 4" in bad["too-large"], bad["too-large"]
        assert "global vocabulary size 11" in bad["too-large"]
        assert "target -3 of token 4" in bad["negative"], bad["negative"]
        assert "several" in bad["overlap"], bad["overlap"]


def test_dtensor_inputs_are_routed_or_refused(spawned: list[dict[str, Any]]) -> None:
    """1-D "tp" sub-mesh of 2 ranks, and the 2-D (dp=2, tp=2) mesh."""
    case = CASES[1]
    ref = _reference_grads(case, make_inputs(case, seed=101))
    half = math.ceil(case["V"] / 2)  # DTensor's Shard(0) follows torch.chunk
    for r, res in enumerate(spawned):
        dt = res["dtensor"]
        c = dt["tp_coordinate"]
        rows = slice(min(c * half, case["V"]), min((c + 1) * half, case["V"]))
        for label, cls_rows in (("sharded", rows), ("replicated", slice(None)),
                                ("plain-hidden-confirmed", rows), ("mesh2d", rows)):  # fmt: skip
            got, what = dt[label], f"dtensor {label} rank={r}"
            _close(got["loss"], ref["loss"], 1e-10, f"{what}: loss")
            _close(got["d_hidden"], ref["d_hidden"], 1e-10, f"{what}: d_hidden")
            _close(got["d_shard"], ref["d_classifier"][cls_rows], 1e-10, f"{what}: d_classifier")
            _close(got["d_bias"], ref["d_bias"][cls_rows], 1e-10, f"{what}: d_bias")
        refusals = dt["refusals"]
        assert "vocab_parallel=" in refusals["plain-hidden"], refusals["plain-hidden"]
        assert "hidden.to_local()" in refusals["token-sharded-hidden"]
        assert "Shard(0)" in refusals["classifier-sharded-on-D"]


def _single_process_training(vocab_parallel_options: bool) -> dict[str, torch.Tensor]:
    data = training_data()
    emb = data["embedding"].clone().requires_grad_(True)
    cls = data["classifier"].clone().requires_grad_(True)
    opts = (
        dict(softcap=data["softcap"], label_smoothing=data["label_smoothing"])
        if vocab_parallel_options
        else {}
    )
    for step in range(data["steps"]):
        hidden = torch.tanh(emb[data["x"][step]])
        loss = reference_loss(hidden, cls, None, data["y"][step], **opts)  # one big batch
        d_emb, d_cls = torch.autograd.grad(loss, (emb, cls))
        with torch.no_grad():
            emb -= data["lr"] * d_emb
            cls -= data["lr"] * d_cls
    return dict(embedding=emb.detach(), classifier=cls.detach())


def test_ddp_with_num_items_matches_single_process_training(ranks: Any) -> None:
    _world, results = ranks
    ref = _single_process_training(vocab_parallel_options=False)
    start = training_data()
    assert not torch.allclose(ref["classifier"], start["classifier"], atol=1e-3)  # it trained
    for r, res in results:
        _close(res["ddp"]["embedding"], ref["embedding"], 1e-10, f"DDP rank {r}: embedding")
        _close(res["ddp"]["classifier"], ref["classifier"], 1e-10, f"DDP rank {r}: classifier")


def test_vocab_parallel_training_matches_single_process_training(ranks: Any) -> None:
    _world, results = ranks
    ref = _single_process_training(vocab_parallel_options=True)
    for r, res in results:
        got = res["vocab_parallel_training"]
        rows = slice(got["start"], got["start"] + got["shard"].shape[0])
        _close(got["embedding"], ref["embedding"], 1e-10, f"TP rank {r}: embedding")
        _close(got["shard"], ref["classifier"][rows], 1e-10, f"TP rank {r}: classifier rows")
