"""``python -m resnet_core``: list, info, predict (and the degradation lab).

Errors a user can cause (unknown names, unavailable weights, unreadable images) print one line and exit 2;
tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .architectures import ARCHITECTURES, get_arch
from .complexity import cost_table
from .degradation.cli import configure_parser, run_cli
from .weights import WeightsUnavailableError, list_weights

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
        for entry in entries or [None]:
            eval_size = entry.eval_size if entry else spec.label_space.preprocess.crop_size
            table = cost_table(name, eval_size)
            imagenet = spec.labels == "imagenet"
            published = entry is not None and entry.gmacs is not None
            rows.append(
                {
                    "arch": name,
                    "family": spec.family,
                    "dataset": spec.label_space.name,
                    "weights": entry.name if entry else "",
                    "default": bool(entry and entry.is_default),
                    "acc1": entry.acc1 if entry else None,
                    "acc5": entry.acc5 if entry else None,
                    "eval_size": eval_size,
                    "params": entry.num_params if entry and entry.num_params else table.total_params,
                    "gmacs_224": entry.gmacs
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
        weights = (row["weights"] + (" (default)" if row["default"] else "")) if row["weights"] else "none published"
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
            print(f"{row['arch']:<20} {weights:<30} {acc1:>7} {_format_int(row['params']):>13} "
                  f"{row['gmacs']:>8.4g} {row['eval_size']:>4}")  # fmt: skip
        print("* default weights. GMACs = 10^9 multiply-adds at the weights' evaluation size (FLOPs are twice that).")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    get_arch(args.arch)
    table = cost_table(args.arch, args.size)  # default: the size its weights are evaluated at
    if args.json:
        print(json.dumps(table.as_dict(), indent=2))
        return 0
    print(f"{args.arch} at {table.input_size}x{table.input_size}: {table.total_params:,} parameters, "
          f"{table.total_macs / 1e9:.3f} GMACs ({table.total_flops / 1e9:.3f} GFLOPs)")  # fmt: skip
    print(f"{'block':<10} {'params':>12} {'MACs':>15} {'FLOPs':>15} {'output':>16} {'% FLOPs':>8}")
    for row in table.rows:
        shape = "x".join(map(str, row.output_shape))
        print(f"{row.name:<10} {_format_int(row.params):>12} {_format_int(row.macs):>15} "
              f"{_format_int(row.flops):>15} {shape:>16} {100 * row.flops_share:>7.1f}%")  # fmt: skip
    print("per stage:")
    for stage, total in table.stages().items():
        print(f"  {stage:<8} {int(total['blocks']):>3} rows {_format_int(total['params']):>12} params "
              f"{_format_int(total['macs']):>15} MACs {100 * total['flops_share']:>6.1f}% of FLOPs")  # fmt: skip
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import torch

    from .create import create_model
    from .preprocess import load_image

    image = load_image(args.image)
    model = create_model(args.arch, weights=args.weights, progress=not args.json)
    model_card = model.card
    with torch.inference_mode():
        probs = model(model_card.preprocess(image).unsqueeze(0)).softmax(-1)[0]
    top = probs.topk(min(args.topk, probs.numel()))
    results = [
        {"index": int(i), "label": model_card.categories[int(i)], "probability": float(p)}
        for p, i in zip(top.values, top.indices, strict=True)
    ]
    if args.json:
        payload = {"arch": args.arch, "weights": model_card.label, "source": model_card.source, "topk": results}
        print(json.dumps(payload, indent=2))
        return 0
    print(f"{args.arch} with {model_card.label} [{model_card.source}]")
    for rank, row in enumerate(results, 1):
        print(f"{rank:>2}. {row['label']:<30} {100 * row['probability']:6.2f}%  (class {row['index']})")
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m resnet_core", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="architectures and weight entries with acc@1, params, GMACs")
    p.add_argument("--json", action="store_true")
    p.add_argument("--markdown", action="store_true", help="the README's table")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="per-block parameters, MACs and FLOPs of an architecture")
    p.add_argument("arch")
    p.add_argument("--size", type=int, default=None, help="input height and width (default: the weights' eval size)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("predict", help="top-k ImageNet classes of an image")
    p.add_argument("image")
    p.add_argument("--arch", default="resnet50")
    p.add_argument("--weights", default="DEFAULT", help="weight name, DEFAULT, a .pth/.safetensors file, or none")
    p.add_argument("--topk", type=_positive, default=5)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_predict)

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
