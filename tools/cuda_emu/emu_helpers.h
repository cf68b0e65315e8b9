// The kernels' helpers for the emulator: the emulated CUDA prelude, then the
// same cuda/device_util.cuh the real kernels use.
#pragma once
#include "emu_prelude.h"
#include "cuda/device_util.cuh"
