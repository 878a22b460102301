"""Mutants that must die: deliberate faults the test suite has to catch.

``python tests/mutants.py`` copies the source tree to a temporary folder, then, one mutant at a
time, applies an exact text replacement to the copy (never to the real files) and runs the named
tests against the copy (``PYTHONPATH`` points at it, so CLI and torchrun children run it too).
Each mutant must make at least one of its tests fail with an assertion; it prints a table
mutant -> the test that caught it and exits non-zero if any mutant survived.

Every replacement must match its target exactly as often as declared, or the script stops with an
error: when the code moves (a refactor), the patch is re-pointed instead of silently testing
nothing. Before the mutants, the named fast tests must pass on the unmodified copy, so a kill is
never a test that was failing anyway.

Options: ``--only NAME ...`` runs some mutants; ``--baseline all|fast|none`` (default fast: the
slow tests are run by the suite itself); ``--list`` prints the mutants.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Patch:
    path: str  # relative to the repository root
    old: str
    new: str
    count: int = 1  # how many times ``old`` must occur


@dataclass(frozen=True)
class Mutant:
    name: str
    fault: str
    patches: tuple[Patch, ...]
    tests: tuple[str, ...]  # pytest node ids, fastest first
    slow: bool = False  # whether its tests are marked slow (left out of the fast baseline)


_ADD_SHORTCUT = "            out = out + (x if self.shortcut is None else self.shortcut(x))\n"

MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "residual_removed",
        "the residual addition removed from the 2- and 3-layer blocks",
        (Patch("resnet_exp/models/blocks.py", _ADD_SHORTCUT, "            pass\n", count=2),),
        ("tests/test_models.py::test_residual_block_adds_the_shortcut",),
    ),
    Mutant(
        "shortcut_zero",
        "the shortcut always zero (identity and zero-pad paths add nothing)",
        (
            Patch(
                "resnet_exp/models/blocks.py",
                _ADD_SHORTCUT,
                "            out = out + torch.zeros_like("
                "x if self.shortcut is None else self.shortcut(x))\n",
                count=2,
            ),
        ),
        ("tests/test_models.py::test_residual_block_adds_the_shortcut",),
    ),
    Mutant(
        "milestones_never_applied",
        "multistep never divides the lr",
        (
            Patch(
                "resnet_exp/training/schedules.py",
                "        return gamma ** sum(step >= s for s in steps)\n",
                "        return 1.0\n",
            ),
        ),
        (
            "tests/test_schedules.py::test_multistep_divides_by_ten_at_half_and_three_quarters",
            "tests/test_schedules.py::test_degradation_preset_steps_at_32k_and_48k_of_64k",
        ),
    ),
    Mutant(
        "precision_ignored",
        "trainer.precision never reaches the loop (always fp32)",
        (
            Patch(
                "resnet_exp/session.py",
                "precision_dtype=speed.dtype,",
                "precision_dtype=None,",
            ),
        ),
        ("tests/test_forward_dtype.py::test_precision_is_the_dtype_inside_the_forward_pass[bf16]",),
    ),
    Mutant(
        "ddp_no_allreduce",
        "DDP without gradient all-reduce (the model is not wrapped in DistributedDataParallel)",
        (
            Patch(
                "resnet_exp/training/distributed.py",
                "    return model, torch.nn.parallel.DistributedDataParallel("
                "model, device_ids=ids)\n",
                "    return model, model\n",
            ),
        ),
        (
            "tests/test_scale.py::"
            "test_torchrun_two_cpu_processes_match_one_process_and_write_one_run",
        ),
        slow=True,
    ),
    Mutant(
        "best_by_training_error",
        "best.pt chosen by training error",
        (
            Patch(
                "resnet_exp/training/loop.py",
                "        key = VAL_ERR if VAL_ERR in row else TRAIN_ERR\n",
                "        key = TRAIN_ERR\n",
            ),
        ),
        (
            "tests/test_best_and_resume.py::test_best_pt_is_the_epoch_with_the_lowest_validation_error",
        ),
    ),
    Mutant(
        "verdict_sign_flipped",
        "the sweep verdict's depth effect has its sign flipped",
        (
            Patch(
                "resnet_exp/report/study.py",
                "    parts = contrast_parts(groups, depth_weights(depths))\n",
                "    parts = contrast_parts(groups, [-w for w in depth_weights(depths)])\n",
            ),
        ),
        (
            "tests/test_stats.py::test_issue_seeds_pooled_give_the_papers_answer",
            "tests/test_report.py::test_report_rows_and_degradation_verdict",
        ),
    ),
    Mutant(
        "resume_skips_optimizer",
        "checkpoint restore skips the optimizer state (momentum buffers lost)",
        (
            Patch(
                "resnet_exp/training/loop.py",
                "            getattr(self, name).load_state_dict(state[name])\n",
                '            if name != "optimizer":\n'
                "                getattr(self, name).load_state_dict(state[name])\n",
            ),
        ),
        ("tests/test_best_and_resume.py::test_resume_restores_optimizer_and_schedule_bit_for_bit",),
    ),
    # -- settings and modes whose effect only a test that observes them catches (issue 22) --
    Mutant(
        "weight_decay_never_applied",
        "the optimizer gets one parameter group whose weight_decay is 0",
        (
            Patch(
                "resnet_exp/session.py",
                'instantiate_node(cfg.optimizer, "optimizer")(model.parameters())',
                'instantiate_node(cfg.optimizer, "optimizer")('
                '[{"params": list(model.parameters()), "weight_decay": 0.0}])',
            ),
        ),
        ("tests/test_knobs.py::test_sgd_steps_match_a_hand_written_sgd[False]",),
    ),
    Mutant(
        "evaluate_in_training_mode",
        "evaluate() runs the network in training mode (batch statistics, running stats move)",
        (
            Patch(
                "resnet_exp/training/loop.py",
                "        self.model.eval()\n",
                "        self.model.train()\n",
            ),
        ),
        (
            "tests/test_evaluate_pure.py::"
            "test_evaluating_twice_changes_nothing_and_restores_training_mode",
            "tests/test_evaluate_pure.py::"
            "test_reported_test_numbers_are_the_eval_mode_network_of_the_checkpoint",
        ),
    ),
    Mutant(
        "val_numbers_from_the_test_split",
        "the validation columns are computed on the test images",
        (
            Patch(
                "resnet_exp/data/module.py",
                "        return self._eval[split].eval_batches(self.eval_batch_size)\n",
                '        return self._eval["test"].eval_batches(self.eval_batch_size)\n',
            ),
        ),
        (
            "tests/test_evaluate_pure.py::"
            "test_reported_test_numbers_are_the_eval_mode_network_of_the_checkpoint[False]",
        ),
    ),
    Mutant(
        "responses_in_training_mode",
        "Fig. 7's layer responses measured with batch statistics (training mode)",
        (Patch("resnet_exp/training/responses.py", "    model.eval()\n", "    model.train()\n"),),
        (
            "tests/test_first_principles.py::"
            "test_layer_responses_are_the_std_of_each_batchnorm_output_on_the_first_images",
        ),
    ),
    Mutant(
        "mid_epoch_checkpoint_without_partial_sums",
        "a mid-epoch checkpoint leaves out the epoch's partial sums (the resumed row is wrong)",
        (
            Patch(
                "resnet_exp/training/loop.py",
                "        partial = self.sums if self.step_in_epoch else None\n",
                "        partial = None\n",
            ),
        ),
        ("tests/test_first_principles.py::test_a_run_stopped_mid_epoch_resumes_bit_identical",),
    ),
    Mutant(
        "evaluate_leaves_eval_mode",
        "evaluate() hands the network back in eval mode",
        (
            Patch(
                "resnet_exp/training/loop.py",
                "            self.model.train(was_training)\n",
                "            pass\n",
            ),
        ),
        (
            "tests/test_evaluate_pure.py::"
            "test_evaluating_twice_changes_nothing_and_restores_training_mode",
        ),
    ),
    Mutant(
        "grad_norm_squared",
        "the per-part gradient norm is accumulated squared",
        (
            Patch(
                "resnet_exp/training/loop.py",
                "sums.grads[name] += torch.nn.utils.get_total_norm(grads)\n",
                "sums.grads[name] += torch.nn.utils.get_total_norm(grads) ** 2\n",
            ),
        ),
        (
            "tests/test_first_principles.py::"
            "test_epoch_and_step_rows_and_grad_norms_equal_a_recomputation",
        ),
    ),
    Mutant(
        "train_loss_per_batch",
        "the epoch's training loss sums batch means as if they were per-image losses",
        (
            Patch(
                "resnet_exp/training/loop.py",
                "        batch_loss = loss.detach() * y.numel()\n",
                "        batch_loss = loss.detach()\n",
            ),
        ),
        (
            "tests/test_first_principles.py::"
            "test_epoch_and_step_rows_and_grad_norms_equal_a_recomputation",
        ),
    ),
    Mutant(
        "step_window_error_not_reset",
        "a per-step row's error count carries over from the previous window",
        (Patch("resnet_exp/training/epoch_sums.py", "        self.wrong.zero_()\n", ""),),
        (
            "tests/test_first_principles.py::"
            "test_epoch_and_step_rows_and_grad_norms_equal_a_recomputation",
        ),
    ),
    Mutant(
        "warmup_one_step_ahead",
        "the linear warm-up starts one step further up its ramp",
        (
            Patch(
                "resnet_exp/training/schedules.py",
                "(1 - warmup_factor) * step / warmup_steps\n",
                "(1 - warmup_factor) * (step + 1) / warmup_steps\n",
            ),
        ),
        (
            "tests/test_schedules.py::test_linear_warmup_then_constant",
            "tests/test_knobs.py::test_sgd_steps_match_a_hand_written_sgd[False]",
        ),
    ),
    Mutant(
        "cosine_floor_ignored",
        "scheduler.min_factor has no effect (the cosine always decays to 0)",
        (
            Patch(
                "resnet_exp/training/schedules.py",
                "        return min_factor + (1 - min_factor) * 0.5 * ",
                "        return 0.5 * ",
            ),
        ),
        ("tests/test_schedules.py::test_cosine_with_floor_and_warmup",),
    ),
    Mutant(
        "normalise_without_mean",
        "data.mean is never subtracted from the images",
        (
            Patch(
                "resnet_exp/data/tensor_loader.py",
                ".div_(255.0).sub_(self.mean).div_(self.std)",
                ".div_(255.0).div_(self.std)",
            ),
        ),
        (
            "tests/test_first_principles.py::"
            "test_training_batches_are_the_images_normalised_with_the_configured_mean_and_std",
        ),
    ),
    Mutant(
        "interval_uses_normal_quantile",
        "a configuration's 95% interval uses 1.96 instead of Student's t quantile",
        (
            Patch(
                "resnet_exp/report/stats.py",
                "        low, high = stats.ttest_1samp(xs, 0.0).confidence_interval(CONFIDENCE)\n",
                "        half = 1.96 * std / math.sqrt(xs.size)\n"
                "        low, high = mean - half, mean + half\n",
            ),
        ),
        ("tests/test_first_principles.py::test_spread_interval_is_scipys_t_interval",),
    ),
    Mutant(
        "contrast_population_variance",
        "the depth-effect contrast uses the population variance (ddof 0)",
        (
            Patch(
                "resnet_exp/report/stats.py",
                "w * w * float(np.var(x, ddof=1)) for w, x",
                "w * w * float(np.var(x, ddof=0)) for w, x",
            ),
        ),
        ("tests/test_stats.py::test_four_group_contrast_equals_scipy_welch_for_two_groups",),
    ),
    # -- issue 32: one bad element, a tie, the sizes the presets use, a stream ignoring the seed --
    Mutant(
        "checkpoint_finite_any",
        "the checkpoint check asks that some element be finite, not every one",
        (
            Patch(
                "resnet_exp/training/checkpoint_check.py",
                "not bool(torch.isfinite(tensor).all())",
                "not bool(torch.isfinite(tensor).any())",
            ),
        ),
        (
            "tests/test_checkpoint_check.py::"
            "test_one_non_finite_element_is_refused[model.1.running_var-nan]",
            "tests/test_checkpoint_check.py::test_any_single_non_finite_element_is_refused_by_name",
        ),
    ),
    Mutant(
        "checkpoint_negative_variance_kept",
        "a running variance is refused only when every element is negative",
        (
            Patch(
                "resnet_exp/training/checkpoint_check.py",
                'name.endswith("running_var") and bool((tensor < 0).any())',
                'name.endswith("running_var") and bool((tensor < 0).all())',
            ),
        ),
        (
            "tests/test_checkpoint_check.py::"
            "test_a_single_negative_running_variance_is_refused_and_zero_is_kept",
        ),
    ),
    Mutant(
        "divergence_check_any",
        "the divergence check calls a weight finite when any of its elements is",
        (
            Patch(
                "resnet_exp/training/policy.py",
                "[~torch.isfinite(p).all() for p in params]",
                "[~torch.isfinite(p).any() for p in params]",
            ),
        ),
        (
            "tests/test_selection_rules.py::"
            "test_one_non_finite_element_of_one_weight_or_buffer_is_divergence[nan-1.running_var]",
        ),
    ),
    Mutant(
        "best_on_tie",
        "best.pt taken by <= (a later epoch that only ties the best validation error becomes best)",
        (
            Patch(
                "resnet_exp/training/loop.py",
                "if self.best is None or row[key] < self.best[key]:",
                "if self.best is None or row[key] <= self.best[key]:",
            ),
        ),
        (
            "tests/test_selection_rules.py::"
            "test_best_epoch_is_the_first_with_the_lowest_validation_error",
            "tests/test_best_and_resume.py::"
            "test_best_pt_is_the_epoch_with_the_lowest_validation_error[tie]",
        ),
    ),
    Mutant(
        "report_best_last_tie",
        "the report's recomputed best epoch takes the last of tied validation errors",
        (
            Patch(
                "resnet_exp/report/aggregate.py",
                "best = min(with_val, key=lambda r: r[VAL_ERR])",
                "best = min(reversed(with_val), key=lambda r: r[VAL_ERR])",
            ),
        ),
        (
            "tests/test_selection_rules.py::"
            "test_best_epoch_is_the_first_with_the_lowest_validation_error",
        ),
    ),
    Mutant(
        "still_falling_at_the_threshold",
        "a fall of exactly STILL_FALLING_PP counts as still falling",
        (
            Patch(
                "resnet_exp/report/convergence.py",
                "self.fall_pp > STILL_FALLING_PP and",
                "self.fall_pp >= STILL_FALLING_PP and",
            ),
        ),
        (
            "tests/test_selection_rules.py::"
            "test_a_fall_of_exactly_the_threshold_with_no_noise_is_levelled_off",
        ),
    ),
    Mutant(
        "late_window_edge_shifted",
        "the late-fall windows include their start step and leave out their end step",
        (
            Patch(
                "resnet_exp/report/convergence.py",
                'if start < r["step"] <= end and',
                'if start <= r["step"] < end and',
            ),
        ),
        ("tests/test_selection_rules.py::test_the_late_window_starts_after_the_step_at_its_edge",),
    ),
    Mutant(
        "not_reproduced_at_the_margin",
        "an interval whose upper bound is exactly the margin rules the rise out",
        (
            Patch(
                "resnet_exp/report/claims.py",
                "    if effect.ci_high < margin:\n        return Claim(NOT_REPRODUCED, effect)\n",
                "    if effect.ci_high <= margin:\n        return Claim(NOT_REPRODUCED, effect)\n",
            ),
        ),
        ("tests/test_selection_rules.py::test_rises_at_zero_and_at_the_margin",),
    ),
    Mutant(
        "below_plain_at_the_margin",
        "a gap interval starting exactly at the margin reads 'below plain'",
        (
            Patch(
                "resnet_exp/report/claims.py",
                "if between.ci_low > margin:",
                "if between.ci_low >= margin:",
            ),
        ),
        ("tests/test_selection_rules.py::test_stays_below_at_the_margin",),
    ),
    Mutant(
        "most_avoided_at_one_half",
        "a share interval starting exactly at one half reads 'most of the penalty avoided'",
        (
            Patch(
                "resnet_exp/report/claims.py",
                "if share.ci_low > MOST:",
                "if share.ci_low >= MOST:",
            ),
        ),
        ("tests/test_selection_rules.py::test_most_of_the_penalty_avoided_at_exactly_one_half",),
    ),
    Mutant(
        "resize_without_antialias",
        "the tensor loader's data.resize without antialiasing",
        (
            Patch(
                "resnet_exp/data/module.py",
                "BILINEAR, antialias=True\n",
                "BILINEAR, antialias=False\n",
            ),
        ),
        (
            "tests/test_preset_data_oracle.py::"
            "test_batches_equal_torchvisions_reference_at_the_presets_sizes[degradation_quick]",
        ),
    ),
    Mutant(
        "resize_nearest",
        "the tensor loader's data.resize by nearest neighbour",
        (
            Patch(
                "resnet_exp/data/module.py",
                "interpolation=InterpolationMode.BILINEAR,",
                "interpolation=InterpolationMode.NEAREST,",
            ),
        ),
        (
            "tests/test_preset_data_oracle.py::"
            "test_batches_equal_torchvisions_reference_at_the_presets_sizes[degradation_quick]",
        ),
    ),
    Mutant(
        "order_ignores_the_seed",
        "the epoch order drawn from seed 0 whatever the run seed (replicates share their order)",
        (
            Patch(
                "resnet_exp/data/sampling.py",
                "generator=generator(seed, ORDER, epoch))",
                "generator=generator(0, ORDER, epoch))",
            ),
        ),
        ("tests/test_seed_streams.py::test_the_epoch_order_follows_the_seed[tensor]",),
    ),
    Mutant(
        "split_ignores_the_seed",
        "the validation split drawn from seed 0 whatever the run seed",
        (
            Patch(
                "resnet_exp/data/sampling.py",
                "generator=generator(seed, SPLIT))",
                "generator=generator(0, SPLIT))",
            ),
        ),
        ("tests/test_seed_streams.py::test_the_validation_split_follows_the_seed",),
    ),
    Mutant(
        "augmentation_ignores_the_seed",
        "the tensor loader's crop and flip draws ignore the run seed",
        (
            Patch(
                "resnet_exp/data/tensor_loader.py",
                "sampling.generator(seed, sampling.AUGMENT, epoch, rank)",
                "sampling.generator(0, sampling.AUGMENT, epoch, rank)",
            ),
        ),
        ("tests/test_seed_streams.py::test_the_augmentation_draws_follow_the_seed[tensor]",),
    ),
    Mutant(
        "torchvision_augmentation_ignores_the_seed",
        "the torchvision loader's per-sample draws ignore the run seed",
        (
            Patch(
                "resnet_exp/data/torchvision_loader.py",
                "sampling.derive_seed(self.seed, sampling.AUGMENT_PER_SAMPLE",
                "sampling.derive_seed(0, sampling.AUGMENT_PER_SAMPLE",
            ),
        ),
        ("tests/test_seed_streams.py::test_the_augmentation_draws_follow_the_seed[torchvision]",),
    ),
    Mutant(
        "weights_ignore_the_seed",
        "the initial weights drawn from seed 0 whatever the run seed",
        (
            Patch(
                "resnet_exp/session.py",
                "    torch.manual_seed(cfg.seed)\n",
                "    torch.manual_seed(0)\n",
            ),
        ),
        ("tests/test_first_principles.py::test_the_seed_decides_the_run",),
    ),
)


class PatchTargetMissing(RuntimeError):
    """A mutant's target text is not where it should be (the code moved): re-point the patch."""


@dataclass
class Outcome:
    mutant: Mutant
    verdict: str  # killed | SURVIVED | ERROR
    caught_by: str
    seconds: float


_NOT_SOURCE = (".git", ".venv", "outputs", "__pycache__", "*.egg-info", "build", ".pytest_cache")


def copy_tree(destination: Path) -> Path:
    """The working tree's files (tracked and untracked-but-not-ignored) under ``destination``;
    without git (an unpacked archive), everything but virtualenvs, outputs and caches."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout.split(b"\0")
    except (OSError, subprocess.CalledProcessError):
        shutil.copytree(REPO, destination, ignore=shutil.ignore_patterns(*_NOT_SOURCE))
        return destination
    for raw in filter(None, listed):
        relative = raw.decode()
        source = REPO / relative
        if not source.is_file():  # deleted in the working tree but still in the index
            continue
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return destination


def apply(root: Path, patches: tuple[Patch, ...]) -> dict[Path, str]:
    """Apply ``patches`` under ``root``; return the original text of each file changed."""
    originals: dict[Path, str] = {}
    for patch in patches:
        path = root / patch.path
        if not path.is_file():
            raise PatchTargetMissing(f"{patch.path}: no such file in the copy")
        text = path.read_text()
        originals.setdefault(path, text)
        found = text.count(patch.old)
        if found != patch.count:
            raise PatchTargetMissing(
                f"{patch.path}: expected {patch.count} occurrence(s) of {patch.old!r}, found "
                f"{found}. The code moved: re-point this mutant in tests/mutants.py."
            )
        path.write_text(text.replace(patch.old, patch.new))
    return originals


def restore(originals: dict[Path, str]) -> None:
    for path, text in originals.items():
        path.write_text(text)


def pytest_env(root: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTEST_ADDOPTS", None)
    return env


def run_pytest(root: Path, node_ids: tuple[str, ...]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-rfE", "-p", "no:cacheprovider"]
    return subprocess.run(
        [*command, *node_ids], cwd=root, env=pytest_env(root), capture_output=True, text=True
    )


def check_copy_is_imported(root: Path) -> None:
    """The copy's package must shadow any installed one (an editable install of the real tree)."""
    probe = subprocess.run(
        [sys.executable, "-c", "import resnet_exp; print(resnet_exp.__file__)"],
        cwd=root,
        env=pytest_env(root),
        capture_output=True,
        text=True,
        check=True,
    )
    imported = Path(probe.stdout.strip()).resolve()
    if root.resolve() not in imported.parents:
        raise RuntimeError(f"the copy is not what runs: resnet_exp imports from {imported}")


_FAILED = re.compile(r"^FAILED (\S+)", re.MULTILINE)
# pytest's long traceback ends with "<file>:<line>: AssertionError" for a failed assert
_ASSERTION = re.compile(r"^\S+:\d+: AssertionError$", re.MULTILINE)


def judge(mutant: Mutant, result: subprocess.CompletedProcess, seconds: float) -> Outcome:
    output = result.stdout + result.stderr
    if result.returncode == 0:
        return Outcome(mutant, "SURVIVED", "-", seconds)
    failed = _FAILED.findall(output)
    # A kill is a failed assertion in a named test, not a crash, import error or missing test.
    if result.returncode == 1 and failed and _ASSERTION.search(output):
        return Outcome(mutant, "killed", failed[0], seconds)
    tail = "\n".join(output.splitlines()[-25:])
    return Outcome(mutant, "ERROR", f"pytest exit {result.returncode}:\n{tail}", seconds)


def table(outcomes: list[Outcome]) -> str:
    width = max(len(o.mutant.name) for o in outcomes)
    lines = [f"{'mutant':<{width}}  {'result':<8}  {'time':>6}  caught by"]
    lines.append("-" * (width + 60))
    for o in outcomes:
        caught = o.caught_by if o.verdict != "ERROR" else o.caught_by.splitlines()[0]
        lines.append(f"{o.mutant.name:<{width}}  {o.verdict:<8}  {o.seconds:5.0f}s  {caught}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these mutants")
    parser.add_argument("--baseline", choices=("all", "fast", "none"), default="fast")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args(argv)
    known = {m.name: m for m in MUTANTS}
    if args.list:
        for m in MUTANTS:
            print(f"{m.name}: {m.fault}\n    " + "\n    ".join(m.tests))
        return 0
    unknown = sorted(set(args.only or ()) - set(known))
    if unknown:
        print(f"error: unknown mutant(s) {unknown}; valid: {', '.join(known)}", file=sys.stderr)
        return 2
    chosen = [known[n] for n in args.only] if args.only else list(MUTANTS)

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="resnet_exp-mutants-") as tmp:
        root = copy_tree(Path(tmp) / "src")
        check_copy_is_imported(root)
        # Every target must be found before anything runs: a moved target fails fast.
        for mutant in chosen:
            restore(apply(root, mutant.patches))
        if args.baseline != "none":
            wanted = [m for m in chosen if args.baseline == "all" or not m.slow]
            ids = tuple(dict.fromkeys(t for m in wanted for t in m.tests))
            base = run_pytest(root, ids)
            if base.returncode != 0:
                print((base.stdout + base.stderr)[-4000:], file=sys.stderr)
                print("error: the mutants' tests fail on the unmodified copy", file=sys.stderr)
                return 1
            print(f"baseline: {len(ids)} tests pass on the unmodified copy", flush=True)
        outcomes = []
        for mutant in chosen:
            originals = apply(root, mutant.patches)
            begin = time.monotonic()
            try:
                result = run_pytest(root, mutant.tests)
            finally:
                restore(originals)
            outcomes.append(judge(mutant, result, time.monotonic() - begin))
            print(f"{mutant.name}: {outcomes[-1].verdict}", flush=True)
    print()
    print(table(outcomes))
    print(f"\n{len(outcomes)} mutants in {time.monotonic() - started:.0f} s")
    bad = [o for o in outcomes if o.verdict != "killed"]
    for o in bad:
        print(f"\n{o.mutant.name} ({o.mutant.fault}): {o.verdict}\n{o.caught_by}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
