"""Test helper shared by the TRL-integration tests (test_trl_integration, test_trl_parity, test_accelerate_launch)."""

from __future__ import annotations


def generation_batch_grads(trainer, ga: int):
    """One generation batch through TRL's own path (``_prepare_inputs`` generates at micro-step 0 and serves
    the rest from its buffer), then ``compute_loss(...).backward()`` accumulated over the ``ga`` micro-batches.

    Returns ``(micro, model)`` with the gradients left in ``model``'s ``.grad``: the tests compare them with
    our trainer's (or, across processes, reduce them first)."""
    model = trainer.model
    model.train()
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.current_gradient_accumulation_steps = ga
    micro = []
    for s in range(ga):
        trainer._step = s
        micro.append(trainer._prepare_inputs(batch))
    model.zero_grad()
    for inp in micro:
        trainer.compute_loss(model, inp).backward()
    return micro, model


#: the answer marker of the TRL tests' tiny problems
MARKER = "\nAnswer:"


def cpu_trainer_args(estimator: str, output_dir, *, bs: int = 4, M: int = 4, ga: int | None = None, **fields):
    """``(args, trainer_class)`` for a TRL test run on the CPU: a :class:`GARLConfig` (``estimator="garl"``) or
    :class:`PAFTConfig` (``"paft"``) in float32/64 without gradient checkpointing, reports or checkpoints, ``bs``
    rows per device batch, ``M`` completions per prompt (``num_generations``) of at most 6 tokens, ``ga``
    gradient-accumulation steps (TRL's default when None), marker :data:`MARKER`; ``fields`` override."""
    from tsallis_ref.integrations.trl import GARLConfig, GARLTrainer, PAFTConfig, PAFTTrainer

    cfg_cls, tr_cls = (GARLConfig, GARLTrainer) if estimator == "garl" else (PAFTConfig, PAFTTrainer)
    base = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=bs,
        num_generations=M,
        max_completion_length=6,
        report_to=[],
        use_cpu=True,
        gradient_checkpointing=False,
        bf16=False,
        answer_marker=MARKER,
        save_strategy="no",
    )
    if ga is not None:
        base["gradient_accumulation_steps"] = ga
    return cfg_cls(**{**base, **fields}), tr_cls
