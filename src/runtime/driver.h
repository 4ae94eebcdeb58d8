/* The CUDA driver, loaded at run time with dlopen so kiln builds and runs (compile-only)
 * on machines without one. Tests and benchmarks use this table too. */
#ifndef KILN_DRIVER_H
#define KILN_DRIVER_H

#include <cuda.h>

#include "../base/base.h"

#define KILN__DRIVER_FUNCTIONS(X)                                                              \
    X(cuInit, (unsigned))                                                                      \
    X(cuDriverGetVersion, (int *))                                                             \
    X(cuGetErrorName, (CUresult, const char **))                                               \
    X(cuGetErrorString, (CUresult, const char **))                                             \
    X(cuDeviceGetCount, (int *))                                                               \
    X(cuDeviceGet, (CUdevice *, int))                                                          \
    X(cuDeviceGetName, (char *, int, CUdevice))                                                \
    X(cuDeviceGetAttribute, (int *, CUdevice_attribute, CUdevice))                             \
    X(cuDevicePrimaryCtxRetain, (CUcontext *, CUdevice))                                       \
    X(cuDevicePrimaryCtxRelease, (CUdevice))                                                   \
    X(cuCtxGetCurrent, (CUcontext *))                                                          \
    X(cuCtxSetCurrent, (CUcontext))                                                            \
    X(cuCtxSynchronize, (void))                                                                \
    X(cuModuleLoadData, (CUmodule *, const void *))                                            \
    X(cuModuleUnload, (CUmodule))                                                              \
    X(cuModuleGetFunction, (CUfunction *, CUmodule, const char *))                             \
    X(cuFuncSetAttribute, (CUfunction, CUfunction_attribute, int))                             \
    X(cuFuncGetAttribute, (int *, CUfunction_attribute, CUfunction))                           \
    X(cuLaunchKernelEx, (const CUlaunchConfig *, CUfunction, void **, void **))                \
    X(cuOccupancyMaxActiveClusters, (int *, CUfunction, const CUlaunchConfig *))               \
    X(cuTensorMapEncodeTiled,                                                                  \
      (CUtensorMap *, CUtensorMapDataType, cuuint32_t, void *, const cuuint64_t *,             \
       const cuuint64_t *, const cuuint32_t *, const cuuint32_t *, CUtensorMapInterleave,      \
       CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill))                   \
    X(cuMemAlloc, (CUdeviceptr *, size_t))                                                     \
    X(cuMemFree, (CUdeviceptr))                                                                \
    X(cuMemcpyHtoD, (CUdeviceptr, const void *, size_t))                                       \
    X(cuMemcpyDtoH, (void *, CUdeviceptr, size_t))                                             \
    X(cuMemcpyDtoDAsync, (CUdeviceptr, CUdeviceptr, size_t, CUstream))                         \
    X(cuMemsetD8, (CUdeviceptr, unsigned char, size_t))                                        \
    X(cuMemsetD32, (CUdeviceptr, unsigned, size_t))                                            \
    X(cuMemsetD32Async, (CUdeviceptr, unsigned, size_t, CUstream))                             \
    X(cuStreamCreate, (CUstream *, unsigned))                                                  \
    X(cuStreamDestroy, (CUstream))                                                             \
    X(cuStreamSynchronize, (CUstream))                                                         \
    X(cuStreamBeginCapture, (CUstream, CUstreamCaptureMode))                                   \
    X(cuStreamEndCapture, (CUstream, CUgraph *))                                               \
    X(cuGraphInstantiateWithFlags, (CUgraphExec *, CUgraph, unsigned long long))               \
    X(cuGraphLaunch, (CUgraphExec, CUstream))                                                  \
    X(cuGraphExecDestroy, (CUgraphExec))                                                       \
    X(cuGraphDestroy, (CUgraph))                                                               \
    X(cuEventCreate, (CUevent *, unsigned))                                                    \
    X(cuEventRecord, (CUevent, CUstream))                                                      \
    X(cuEventSynchronize, (CUevent))                                                           \
    X(cuEventElapsedTime, (float *, CUevent, CUevent))                                         \
    X(cuEventDestroy, (CUevent))

#define KILN__DRIVER_MEMBER(name, args) CUresult(CUDAAPI *name) args;
typedef struct kiln__driver {
    KILN__DRIVER_FUNCTIONS(KILN__DRIVER_MEMBER)
} kiln__driver;
#undef KILN__DRIVER_MEMBER

/* Load libcuda.so.1 and cuInit(0) once per process. Returns NULL (and fills err with
 * KILN_ERR_NO_DEVICE and the reason) when there is no usable driver. Thread-safe. */
const kiln__driver *kiln__driver_get(kiln__err *err);

/* "cuLaunchKernelEx: CUDA_ERROR_INVALID_VALUE (invalid argument)" into err. */
int kiln__driver_error(kiln__err *err, const char *call, CUresult rc);

#endif
