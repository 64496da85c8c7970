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
