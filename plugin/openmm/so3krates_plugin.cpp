// OpenMM plugin of openmm-so3krates. OpenMM loads every library in its plugin directory at start-up
// (or through Platform.loadPluginsFromDirectory); this one is linked to the TorchScript op library,
// so loading it registers our custom ops before any TorchForce deserializes a model that calls them.
// It adds no kernels of its own yet; kernel factories for compiled OpenMM code register here.
#include "openmm/internal/windowsExport.h"

extern "C" OPENMM_EXPORT void registerPlatforms() {}

extern "C" OPENMM_EXPORT void registerKernelFactories() {}
