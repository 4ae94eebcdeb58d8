/* The SM clock of device 0 while a benchmark runs, from NVML: the driver's libnvidia-ml.so.1,
 * opened at run time (the benchmarks do not link it; without it the clock reads 0, unknown).
 * Why: under sustained FP8 load the H200 runs into its power cap, and the clock it settles at
 * moved with the configuration in stop 11's traces (1.39-1.48 GHz at 4096x7168x16384), so a
 * configuration's time alone does not say whether it won on cycles or on clock. */
#ifndef KILN_TOOLS_BENCH_CLOCK_H
#define KILN_TOOLS_BENCH_CLOCK_H

#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "../tests/gpu_util.h"

/* The three NVML entry points used (nvml.h: nvmlReturn_t is an int enum, 0 = success;
 * nvmlDevice_t an opaque pointer; NVML_CLOCK_SM = 1). */
typedef int (*nvml_init_fn)(void);
typedef int (*nvml_by_bus_id_fn)(const char *bus_id, void **device);
typedef int (*nvml_clock_fn)(void *device, int type, unsigned *mhz);

static struct {
    bool tried;
    void *device;
    nvml_clock_fn clock_info;
} bench_nvml;

static inline void *bench_nvml_symbol(void *lib, const char *name)
{
    return lib != NULL ? dlsym(lib, name) : NULL;
}

/* NVML's handle of CUDA device 0, found by its PCI address (NVML numbers devices in PCI
 * order, CUDA by default fastest first). */
static inline void bench_nvml_open(void)
{
    bench_nvml.tried = true;
    void *lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    void *init_sym = bench_nvml_symbol(lib, "nvmlInit_v2");
    void *by_bus_sym = bench_nvml_symbol(lib, "nvmlDeviceGetHandleByPciBusId_v2");
    void *clock_sym = bench_nvml_symbol(lib, "nvmlDeviceGetClockInfo");
    if (init_sym == NULL || by_bus_sym == NULL || clock_sym == NULL)
        return;
    nvml_init_fn init;
    nvml_by_bus_id_fn by_bus_id;
    nvml_clock_fn clock_info;
    memcpy(&init, &init_sym, sizeof init_sym); /* POSIX: dlsym results may be functions */
    memcpy(&by_bus_id, &by_bus_sym, sizeof by_bus_sym);
    memcpy(&clock_info, &clock_sym, sizeof clock_sym);
    CUdevice dev;
    int domain = 0, bus = 0, slot = 0;
    const kiln__driver *drv = gpu_drv();
    if (drv == NULL || init() != 0 || drv->cuDeviceGet(&dev, 0) != CUDA_SUCCESS ||
        drv->cuDeviceGetAttribute(&domain, CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID, dev) != CUDA_SUCCESS ||
        drv->cuDeviceGetAttribute(&bus, CU_DEVICE_ATTRIBUTE_PCI_BUS_ID, dev) != CUDA_SUCCESS ||
        drv->cuDeviceGetAttribute(&slot, CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID, dev) != CUDA_SUCCESS)
        return;
    char bus_id[32];
    snprintf(bus_id, sizeof bus_id, "%08x:%02x:%02x.0", (unsigned)domain, (unsigned)bus,
             (unsigned)slot);
    if (by_bus_id(bus_id, &bench_nvml.device) == 0)
        bench_nvml.clock_info = clock_info;
}

/* The SM clock now, in MHz; 0 when NVML cannot say. */
static inline unsigned bench_sm_clock_mhz(void)
{
    if (!bench_nvml.tried)
        bench_nvml_open();
    unsigned mhz = 0;
    if (bench_nvml.clock_info == NULL || bench_nvml.clock_info(bench_nvml.device, 1, &mhz) != 0)
        return 0;
    return mhz;
}

#endif
