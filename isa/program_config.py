"""Which hardware config a program runs on: the one it embeds or was compiled for, or the one `--hw` names."""

from __future__ import annotations

from typing import Any

from edgebert.isa.errors import HardwareConfigError
from edgebert.isa.hardware import (
    MAX_CONFIG_BYTES,
    HardwareConfig,
    bundled_by_fingerprint,
    bundled_configs,
    default_config,
    load_config,
    parse_config_text,
)


def embedded_config(metadata: Any, fingerprint: bytes, where: str) -> HardwareConfig | None:
    """The config a program's metadata embeds (key `hw_config`: its TOML text), validated against `fingerprint`."""
    if not isinstance(metadata, dict) or "hw_config" not in metadata:
        return None
    text = metadata["hw_config"]
    if not isinstance(text, str):
        raise HardwareConfigError(f"{where}: metadata 'hw_config' must be the config's TOML text, not "
                                  f"{type(text).__name__}")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_CONFIG_BYTES:
        raise HardwareConfigError(f"{where}: metadata 'hw_config' is larger than {MAX_CONFIG_BYTES} bytes")
    hw = parse_config_text(text, f"{where}: metadata 'hw_config'")
    if any(fingerprint) and hw.fingerprint != fingerprint:
        raise HardwareConfigError(
            f"{where}: metadata 'hw_config' ({hw.name}, fingerprint {hw.fingerprint.hex()[:16]}...) does not match "
            f"the header's fingerprint {fingerprint.hex()[:16]}..."
        )
    return hw


def program_config(metadata: Any, fingerprint: bytes, where: str) -> HardwareConfig | None:
    """The config a program was built for: embedded in its metadata, else the bundled one with its fingerprint,
    else the default for an all-zero fingerprint (hand-built programs); None when the fingerprint is unknown."""
    hw = embedded_config(metadata, fingerprint, where)
    if hw is not None:
        return hw
    if not any(fingerprint):
        return default_config()
    return bundled_by_fingerprint(fingerprint)


def select_config(metadata: Any, fingerprint: bytes, where: str, hw_arg: str | None) -> tuple[HardwareConfig, str]:
    """The config to run a program on, and a warning ("" if none) - the `--hw` rule of every tool.

    Without `hw_arg`: the program's own config (`program_config`), an error when it is unknown. With it: that
    config; when the program was built for another one, the run goes ahead (what-if studies: same binary, other
    machine) with a warning naming both fingerprints.
    """
    if hw_arg is None:
        hw = program_config(metadata, fingerprint, where)
        if hw is None:
            raise HardwareConfigError(
                f"{where} was compiled for hardware config fingerprint {fingerprint.hex()[:16]}..., which is not "
                f"bundled ({', '.join(bundled_configs())}) and not embedded in the file: pass --hw NAME|FILE"
            )
        return hw, ""
    hw = load_config(hw_arg)
    if any(fingerprint) and fingerprint != hw.fingerprint:
        return hw, (f"{where} was compiled for a different hardware config (fingerprint {fingerprint.hex()[:16]}...); "
                    f"running on --hw {hw.name} (fingerprint {hw.fingerprint.hex()[:16]}...) as requested")
    return hw, ""
