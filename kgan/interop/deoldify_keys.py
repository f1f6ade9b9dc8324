"""Recognises DeOldify's published files by their state-dict keys (no TensorFlow): which
generator architecture (DynamicUnetDeep = Artistic, DynamicUnetWide = Stable / Video) or the
critic, and the body width and block counts, so a wrong ``--generator`` gets one line naming
the right one.

Called by kgan.interop.pytorch_weights.describe_checkpoint and kgan.interop.deoldify_weights.
"""

FLAGS = {"deep": "--generator=deoldify_artistic",
         "wide": "--generator=deoldify_stable or --generator=deoldify_video (one architecture, "
                 "two weight files)"}
NAMES = {"deep": "DeOldify's Artistic generator (DynamicUnetDeep, ResNet-34 body)",
         "wide": "DeOldify's Stable / Video generator (DynamicUnetWide, ResNet-101 body)"}


def _blocks(keys, stage):
    prefix = f"layers.0.{stage}."
    return len({k[len(prefix):].split(".")[0] for k in keys if k.startswith(prefix)})


def recognise(state_dict):
    """What DeOldify network a state dict holds.

    Args:
        state_dict: ``{name: array}``.

    Returns:
        None for anything else; otherwise a dict with ``kind`` (``deep``, ``wide`` or
        ``critic``), ``text`` (one phrase) and ``flags`` (the kgan.convert flag); generators
        add ``width``, ``blocks`` and (wide) ``wide_nf``; the critic ``nf`` and ``blocks``.
    """
    keys = set(state_dict)
    if "layers.0.0.weight" in keys and any(k.startswith("layers.10.layers.") for k in keys):
        kind = "deep" if "layers.4.conv1.0.weight_orig" in keys else "wide"
        info = {"kind": kind, "text": NAMES[kind], "flags": FLAGS[kind],
                "width": int(state_dict["layers.0.0.weight"].shape[0]),
                "blocks": tuple(_blocks(keys, stage) for stage in (4, 5, 6, 7))}
        if kind == "wide" and "layers.4.conv.0.weight_orig" in keys:
            info["wide_nf"] = 2 * int(state_dict["layers.4.conv.0.weight_orig"].shape[0])
        return info
    if "0.0.weight_orig" in keys and any(k.endswith(".gamma") for k in keys):
        nf = int(state_dict["0.0.weight_orig"].shape[0])
        last = max(int(k.split(".")[0]) for k in keys if k.split(".")[0].isdigit())
        return {"kind": "critic", "flags": "--discriminator=deoldify_critic", "nf": nf,
                "blocks": (last - 3) // 3,
                "text": f"DeOldify's critic (custom_gan_critic, nf {nf}), not a generator"}
    return None
