"""The TEXT2GRAD core: critique alignment, span-to-token rewards, PPO with per-token rewards.

Plain Python, numpy and torch: nothing here imports Django or the studio's apps (``make lint`` checks it),
so the whole method runs from a notebook with a model and a list of samples::

    from text2grad import alignment, model_store, rewards
    from text2grad.config import TrainingConfig
    from text2grad.engine import Sample, ppo_update
    from text2grad.trainer import train  # the whole round; its docstring trains a LoRA from spans

Modules, bottom up: ``rewards`` (spans -> token rewards), ``alignment`` (critique -> spans), ``ppo``
(GAE, clipped losses, KL controllers), ``config`` (one dataclass of training knobs), ``policy`` (base +
LoRA + value head, save/load), ``engine`` (one PPO update over samples), ``trainer`` (a round: the loop
of updates with resume and hooks), ``generation`` (sampling with behaviour logprobs), ``model_store``
(the embedded base model, its cache), ``distributed`` (DDP helpers).
"""
