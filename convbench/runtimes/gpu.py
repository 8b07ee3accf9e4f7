"""What the GPU was and what state it was in: clocks, temperature and power around a measurement, and the
hardware and software it ran on, for the result rows of CUDA runs.

State is read through NVML (the ``pynvml`` module of the ``nvidia-ml-py`` package, imported lazily) and,
where that is not installed or fails, through ``nvidia-smi``. Either way the GPU is addressed by its UUID
(or PCI bus id), never by its CUDA ordinal: under ``CUDA_VISIBLE_DEVICES`` (or a CUDA_DEVICE_ORDER other
than PCI_BUS_ID) CUDA device 0 need not be NVML or nvidia-smi device 0, so ``nvidia-smi --id=0`` can report
another GPU's clocks. Nothing here raises: a missing tool, driver or GPU gives empty values, because a
measurement that already ran must not be lost to a failed side query.

Energy: ``nvml_energy_counter`` gives the GPU's total-energy counter for ``convbench.timing.energy`` (NVML only:
nvidia-smi has no cumulative energy query).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

from convbench.timing.energy import EnergyCounter, NoCounter

#: what nvidia-smi and NVML both report, in this order (clocks in MHz, temperature in °C, power in W).
SMI_FIELDS = ("sm_clock_mhz", "mem_clock_mhz", "temperature_c", "power_w")
_SMI_STATE_QUERY = ("clocks.sm", "clocks.mem", "temperature.gpu", "power.draw")
#: what ``gpu_state`` reports: the above, then (NVML only) why the clocks are held back, as names joined by "+"
#: ("none" where nothing holds them), and how many other processes hold a CUDA context on this GPU.
STATE_FIELDS = (*SMI_FIELDS, "throttle_reasons", "other_processes")
#: NVML's clock event (throttle) reason bits, ``nvmlClocksEventReason*`` in nvml.h.
THROTTLE_REASONS = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
SMI_TIMEOUT_S = 10


def device_ids(device_index: int) -> tuple[str, str]:
    """The NVML/nvidia-smi UUID (``GPU-…``) and PCI bus id (``00000000:3B:00.0``) of CUDA device
    ``device_index`` as this process numbers it; empty strings where torch cannot tell."""
    try:
        import torch

        props = torch.cuda.get_device_properties(device_index)
    except Exception:  # no CUDA, no such device, a CPU-only torch
        return "", ""
    uuid = ""
    raw = getattr(props, "uuid", None)
    if raw is not None:
        text = str(raw).strip()
        # torch prints the bare 8-4-4-4-12 hex form; NVML and nvidia-smi expect the "GPU-" prefix.
        uuid = text if text.upper().startswith(("GPU-", "MIG-")) else f"GPU-{text}" if text else ""
    bus_id = ""
    bus = getattr(props, "pci_bus_id", None)
    if isinstance(bus, int):
        domain = getattr(props, "pci_domain_id", 0) or 0
        device = getattr(props, "pci_device_id", 0) or 0
        bus_id = f"{domain:08X}:{bus:02X}:{device:02X}.0"
    return uuid, bus_id


def throttle_reason_names(mask: int) -> str:
    """NVML's clock event reason bitmask as names joined by "+" ("none" for 0; unknown bits in hex)."""
    names = [name for bit, name in THROTTLE_REASONS.items() if mask & bit]
    unknown = mask & ~sum(THROTTLE_REASONS)
    if unknown:
        names.append(hex(unknown))
    return "+".join(names) or "none"


def other_process_count(pids: list[int], own_pid: int) -> int:
    """How many of the processes NVML lists on a GPU are not this one, while this one holds a CUDA context.

    In a container NVML lists host PIDs, so this process may appear under a PID other than its own: where the
    list lacks ``own_pid``, one entry is still this process.
    """
    others = [pid for pid in pids if pid != own_pid]
    return len(others) - 1 if others and len(others) == len(pids) else len(others)


def gpu_state(device_index: int = 0) -> dict[str, Any]:
    """Clocks, temperature, power, clock throttle reasons and other processes of CUDA device ``device_index``
    now; ``{}`` where nothing can be read. The last two need NVML (``pip install 'convbench[gpu]'``)."""
    uuid, bus_id = device_ids(device_index)
    if not uuid and not bus_id:
        return {}  # without an unambiguous id, a reading could be another GPU's
    return _nvml_state(uuid, bus_id) or _smi_state(uuid or bus_id)


def gpu_environment(device_index: int = 0) -> dict[str, Any]:
    """The GPU and its software: name, memory, compute capability, UUID, bus id, CUDA, cuDNN and driver
    versions. Every key is always present; ``None`` where it cannot be read."""
    env: dict[str, Any] = dict.fromkeys(
        ("gpu", "gpu_memory_gb", "gpu_compute_capability", "gpu_uuid", "gpu_pci_bus_id", "cuda", "cudnn", "driver")
    )
    try:
        import torch

        env["cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
        props = torch.cuda.get_device_properties(device_index)
        env.update(
            gpu=props.name,
            gpu_memory_gb=round(props.total_memory / 2**30, 1),
            gpu_compute_capability=f"{props.major}.{props.minor}",
        )
    except Exception:
        pass
    uuid, bus_id = device_ids(device_index)
    env["gpu_uuid"] = uuid or None
    env["gpu_pci_bus_id"] = bus_id or None
    if uuid or bus_id:
        env["driver"] = _nvml_driver(uuid, bus_id) or _smi_driver(uuid or bus_id)
    return env


# NVML ---------------------------------------------------------------------------------------------------


def _nvml() -> Any:
    try:
        import pynvml
    except Exception:  # not installed, or a broken install: fall back to nvidia-smi
        return None
    return pynvml


def _nvml_handle(nvml: Any, uuid: str, bus_id: str) -> Any:
    # bytes work with every nvidia-ml-py version (newer ones also take str)
    if uuid:
        return nvml.nvmlDeviceGetHandleByUUID(uuid.encode())
    return nvml.nvmlDeviceGetHandleByPciBusId(bus_id.encode())


def _throttle_reasons(nvml: Any, handle: Any) -> str:
    # Renamed "clock event reasons" in newer NVML; older bindings only have the throttle name.
    read = (
        getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or nvml.nvmlDeviceGetCurrentClocksThrottleReasons
    )
    return throttle_reason_names(int(read(handle)))


def _other_processes(nvml: Any, handle: Any) -> int:
    return other_process_count([int(p.pid) for p in nvml.nvmlDeviceGetComputeRunningProcesses(handle)], os.getpid())


def _nvml_state(uuid: str, bus_id: str) -> dict[str, Any]:
    nvml = _nvml()
    if nvml is None:
        return {}
    try:
        nvml.nvmlInit()
    except Exception:  # no driver, no permission
        return {}
    try:
        handle = _nvml_handle(nvml, uuid, bus_id)
        readers = {
            "sm_clock_mhz": lambda: nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM),
            "mem_clock_mhz": lambda: nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_MEM),
            "temperature_c": lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU),
            "power_w": lambda: float(nvml.nvmlDeviceGetPowerUsage(handle)) / 1000.0,  # NVML reports milliwatts
            "throttle_reasons": lambda: _throttle_reasons(nvml, handle),
            "other_processes": lambda: _other_processes(nvml, handle),
        }
        state: dict[str, Any] = {}
        for key, read in readers.items():
            try:
                value = read()
                state[key] = float(value) if key in SMI_FIELDS else value
            except Exception:  # one counter the GPU does not expose (power on some boards)
                state[key] = None
        return state if any(v is not None for v in state.values()) else {}
    except Exception:
        return {}
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass


def _nvml_driver(uuid: str, bus_id: str) -> str | None:
    nvml = _nvml()
    if nvml is None:
        return None
    try:
        nvml.nvmlInit()
    except Exception:
        return None
    try:
        version = nvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else str(version)
    except Exception:
        return None
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass


class NvmlEnergyCounter(EnergyCounter):
    """NVML's total energy of one GPU since the driver loaded (``nvmlDeviceGetTotalEnergyConsumption``, in
    millijoules, Volta and newer); holds an NVML session until ``close``."""

    def __init__(self, nvml: Any, handle: Any, name: str) -> None:
        self.nvml, self.handle = nvml, handle
        self.source = f"nvml: {name}" if name else "nvml"

    def read(self) -> tuple[float, ...]:
        return (self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle) / 1e3,)

    def wrap_ranges(self) -> tuple[float | None, ...]:
        return (2.0**64 / 1e3,)  # an unsigned 64-bit count of millijoules

    def close(self) -> None:
        try:
            self.nvml.nvmlShutdown()
        except Exception:
            pass


def nvml_energy_counter(device_index: int = 0) -> EnergyCounter | NoCounter:
    """The energy counter of CUDA device ``device_index``, or why there is none (never raises)."""
    uuid, bus_id = device_ids(device_index)
    if not uuid and not bus_id:
        return NoCounter(f"no NVML id for CUDA device {device_index}")
    nvml = _nvml()
    if nvml is None:
        return NoCounter("NVML (nvidia-ml-py) is not installed: pip install 'convbench[gpu]'")
    try:
        nvml.nvmlInit()
    except Exception as exc:
        return NoCounter(f"NVML did not start: {exc}")
    try:
        handle = _nvml_handle(nvml, uuid, bus_id)
        name = nvml.nvmlDeviceGetName(handle)
        counter = NvmlEnergyCounter(nvml, handle, name.decode() if isinstance(name, bytes) else str(name))
        counter.read()
    except Exception as exc:  # NVMLError_NotSupported before Volta, or on some boards
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass
        return NoCounter(f"the GPU's total energy is not readable through NVML: {exc}")
    return counter


# nvidia-smi ---------------------------------------------------------------------------------------------


def _smi(device_id: str, fields: tuple[str, ...]) -> list[str] | None:
    """One CSV line of ``fields`` for the GPU ``device_id`` (UUID or PCI bus id), or ``None``."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--id={device_id}", f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=SMI_TIMEOUT_S,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [line for line in out.splitlines() if line.strip()]
    if len(lines) != 1:  # several lines: the id matched more than one GPU, so none of them is ours for sure
        return None
    values = [v.strip() for v in lines[0].split(",")]
    return values if len(values) == len(fields) else None


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:  # "[N/A]", "[Not Supported]"
        return None


def _smi_state(device_id: str) -> dict[str, float | None]:
    values = _smi(device_id, _SMI_STATE_QUERY)
    if values is None:
        return {}
    state = {key: _number(v) for key, v in zip(SMI_FIELDS, values, strict=True)}
    return state if any(v is not None for v in state.values()) else {}


def _smi_driver(device_id: str) -> str | None:
    values = _smi(device_id, ("driver_version",))
    return values[0] if values and values[0] else None
