"""``brainlike pretrain``, ``brainlike corpus`` and ``brainlike experiment`` (thin: parse, call the library, print)."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_pretrain(subparsers)
    _register_corpus(subparsers)
    _register_experiment(subparsers)


# ------------------------------------------------------------------------------------------------------------ pretrain
def _register_pretrain(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("pretrain", help="train a masked-reconstruction (mae) model on a corpus",
                              description="Train or resume (same --out) a masked-reconstruction model. The result "
                                          "loads as the model `mae:OUT`.")
    p.add_argument("--config", default="tiny", help="tiny | small | base (default tiny)")
    p.add_argument("--corpus", required=True, help="corpus name (built by `brainlike corpus build`), "
                                                     "`synthetic`, or a folder of audio files")
    p.add_argument("--out", required=True, help="output folder (checkpoints, loss.csv, loss.png)")
    p.add_argument("--steps", type=int, help="override the number of optimiser steps")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--clip-seconds", type=float)
    p.add_argument("--lr", type=float)
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--encoder", choices=["transformer", "conv"])
    p.add_argument("--depth", type=int)
    p.add_argument("--width", type=int)
    p.add_argument("--heads", type=int)
    p.add_argument("--mask-ratio", type=float)
    p.add_argument("--mask-span", type=int, help="span length in tokens")
    p.add_argument("--patch-frames", type=int, help="mel frames per token (1 = frame embedding)")
    p.add_argument("--target", choices=["continuous", "discrete"])
    p.add_argument("--n-codes", type=int, help="codebook size for discrete targets")
    p.add_argument("--teacher", help="checkpoint whose layer is quantised for discrete targets")
    p.add_argument("--teacher-layer", help="teacher layer name (e.g. block4)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--no-compile", action="store_true", help="no torch.compile on CUDA")
    p.add_argument("--threads", type=int, help="torch CPU threads (1 is fastest on a crowded machine)")
    p.add_argument("--json", action="store_true", help="print the run summary as JSON on stdout")
    p.set_defaults(handler=_pretrain)


def build_train_config(args: argparse.Namespace):
    """A TrainConfig from a preset name and the command-line overrides."""
    from brainlike.pretrain.presets import override, preset

    model = {"encoder": args.encoder, "depth": args.depth, "width": args.width, "heads": args.heads,
             "mask_ratio": args.mask_ratio, "mask_span": args.mask_span, "patch_frames": args.patch_frames,
             "target": args.target, "n_codes": args.n_codes, "teacher": args.teacher,
             "teacher_layer": args.teacher_layer}
    if args.teacher:
        model["code_source"] = "teacher"
    training = {"steps": args.steps, "batch_size": args.batch_size, "clip_seconds": args.clip_seconds,
                "lr": args.lr, "checkpoint_every": args.checkpoint_every, "seed": args.seed}
    config = override(preset(args.config), model, training)
    if args.lr is not None and config.min_lr > config.lr:
        config = override(config, {}, {"min_lr": config.lr / 10})
    return config


def _pretrain(args: argparse.Namespace) -> int:
    import torch

    from brainlike.pretrain.train import train

    if args.threads:
        torch.set_num_threads(args.threads)
    result = train(build_train_config(args), args.corpus, args.out, device=args.device,
                   compile=False if args.no_compile else None, progress=True)
    summary = {"out": str(result.out), "checkpoint": str(result.checkpoint), "steps": result.steps,
               "resumed_from": result.resumed_from, "first_loss": round(result.first_loss, 4),
               "final_loss": round(result.final_loss, 4), "seconds": round(result.seconds, 1),
               "tokens_per_second": round(result.tokens_per_second, 1), "model_spec": f"mae:{result.out}"}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"trained {summary['steps']} steps: loss {summary['first_loss']} -> {summary['final_loss']}; "
              f"load it as {summary['model_spec']}")
    return 0


# -------------------------------------------------------------------------------------------------------------- corpus
def _register_corpus(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("corpus", help="pretraining corpora: setup, build, check")
    sub = p.add_subparsers(dest="corpus_command", metavar="ACTION", required=True)
    setup = sub.add_parser("setup", help="install the Debian packages the corpora come from (about 1 GB, root)")
    setup.add_argument("--dry-run", action="store_true", help="print the apt-get command only")
    setup.set_defaults(handler=_corpus_setup)
    build = sub.add_parser("build", help="build a corpus with an exact duration budget and a leakage check")
    build.add_argument("domain", choices=["speech", "music", "environmental", "mixture", "synthetic"])
    build.add_argument("--hours", type=float, default=1.0, help="duration budget (default 1 h)")
    build.add_argument("--out", help="output folder (default $BRAINLIKE_CACHE/corpora/DOMAIN)")
    build.add_argument("--seed", type=int, default=0, help="seed of the synthetic corpus")
    build.add_argument("--strict", action="store_true",
                       help="stop at a source clip that matches evaluation audio (default: drop it, list it in "
                            "corpus.json and on stderr, and take the next clips)")
    build.add_argument("--drop-leaks", action="store_true", help=argparse.SUPPRESS)  # the default since 0.1
    build.add_argument("--no-top-up", action="store_true",
                       help="recordings only: no espeak-ng speech or soundfont-rendered music when they fall short")
    build.add_argument("--soundfont", help="soundfont for the music top-up renders (default FluidR3 GM if installed)")
    build.set_defaults(handler=_corpus_build)
    check = sub.add_parser("check", help="leakage check of a corpus folder against the evaluation audio")
    check.add_argument("path")
    check.set_defaults(handler=_corpus_check)


def _corpus_setup(args: argparse.Namespace) -> int:
    from brainlike.pretrain.corpus import run_setup

    print(" ".join(run_setup(dry_run=args.dry_run)))
    return 0


def _corpus_build(args: argparse.Namespace) -> int:
    from pathlib import Path

    from brainlike.pretrain.corpus import build_corpus, build_synthetic, corpora_root

    out = Path(args.out) if args.out else corpora_root() / args.domain
    if args.domain == "synthetic":
        path = build_synthetic(out, n_clips=max(1, int(args.hours * 900)), seconds=4.0, seed=args.seed)
    else:
        path = build_corpus(args.domain, out, budget_seconds=args.hours * 3600, drop_leaks=not args.strict,
                            top_up=not args.no_top_up, soundfont=args.soundfont)
    summary = json.loads((path / "corpus.json").read_text())
    dropped = summary.get("dropped_for_leakage") or []
    if dropped:
        print(f"dropped {len(dropped)} source clip(s) that match evaluation audio (listed in corpus.json):",
              file=sys.stderr)
        for row in dropped:
            print(f"  {row['source']}: {row['reason']}", file=sys.stderr)
    print(f"{path}: {summary['n_clips']} clips, {summary['seconds'] / 3600:.3f} h, "
          f"manifest sha256 {summary['manifest_sha256'][:16]}")
    return 0


def _corpus_check(args: argparse.Namespace) -> int:
    from brainlike.pretrain.corpus import check_leakage, reference_files

    result = check_leakage(args.path, reference_files())
    print(f"{args.path}: clean ({result['clips']} clips against {result['references']} evaluation files)")
    return 0


# ---------------------------------------------------------------------------------------------------------- experiment
def _register_experiment(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("experiment", help="pretraining experiments: diversity, checkpoints, architecture, "
                                                 "finetune (tables and plots)")
    p.add_argument("kind", choices=["diversity", "checkpoints", "architecture", "finetune"])
    p.add_argument("--out", required=True, help="experiment folder (tables, plots, trained models)")
    p.add_argument("--config", default="tiny", help="training preset for the models it trains (default tiny)")
    p.add_argument("--steps", type=int, help="override training steps")
    p.add_argument("--batch-size", type=int, help="override the training batch size")
    p.add_argument("--checkpoint-every", type=int, help="override the checkpoint interval (checkpoints experiment)")
    p.add_argument("--corpora", nargs="+", help="diversity: corpora to compare "
                                                "(default speech music environmental mixture)")
    p.add_argument("--corpus", default="mixture", help="corpus for checkpoints / architecture (default mixture)")
    p.add_argument("--run", help="checkpoints / finetune: an existing training folder instead of training one")
    p.add_argument("--task", default="esc10", help="downstream task: diversity's probe and finetune's task (esc10)")
    p.add_argument("--seed", type=int, help="training seed of the models it trains (default: the preset's, 0)")
    p.add_argument("--epochs", type=int, default=10, help="finetune: epochs of the probe and of fine-tuning")
    p.add_argument("--dataset", default="nh2015-components", help="neural dataset to score on")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.set_defaults(handler=_experiment)


def _experiment(args: argparse.Namespace) -> int:
    import torch

    from brainlike.pretrain import experiments

    if args.threads:
        torch.set_num_threads(args.threads)
    table_path = experiments.run(args.kind, out=args.out, config=args.config, steps=args.steps, corpora=args.corpora,
                                 corpus=args.corpus, run_dir=args.run, task=args.task, dataset=args.dataset,
                                 batch_size=args.batch_size, checkpoint_every=args.checkpoint_every,
                                 epochs=args.epochs, seed=args.seed)
    print(table_path.read_text() if table_path.suffix == ".md" else table_path, file=sys.stdout)
    return 0
