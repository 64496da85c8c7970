"""Optional integrations of GARL and PAFT with third-party training frameworks.

* :mod:`tsallis_ref.integrations.trl`: ``GARLTrainer`` / ``PAFTTrainer``, subclasses of TRL's
  ``GRPOTrainer`` (tested with ``trl==1.16.0``), for multi-GPU / multi-node / DeepSpeed runs
  launched with ``accelerate launch``. Needs the ``trl`` extra: ``pip install tsallis-ref[trl]``.

Nothing is imported here eagerly, so ``import tsallis_ref.integrations`` works without TRL.
"""

__all__ = ["trl"]
