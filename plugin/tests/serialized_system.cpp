// Loads OpenMM plugins from a directory, deserializes a System holding an SO3krates TorchForce and
// checks its energy and forces on the Reference and CPU platforms against values written by Python.
// usage: serialized_system PLUGIN_DIR SYSTEM.xml REFERENCE.txt
// REFERENCE.txt: line 1 "N energy_kJ_mol"; then N lines "x y z fx fy fz" (nm, kJ/mol/nm).
#include <cmath>
#include <fstream>
#include <iostream>
#include <memory>
#include <vector>

#include "OpenMM.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: " << argv[0] << " PLUGIN_DIR SYSTEM.xml REFERENCE.txt\n";
    return 2;
  }
  OpenMM::Platform::loadPluginsFromDirectory(argv[1]);
  for (const std::string& failure : OpenMM::Platform::getPluginLoadFailures())
    if (failure.find("SO3krates") != std::string::npos) {
      std::cerr << "our plugin failed to load: " << failure << "\n";
      return 1;
    }
  std::ifstream xml(argv[2]);
  std::unique_ptr<OpenMM::System> system(OpenMM::XmlSerializer::deserialize<OpenMM::System>(xml));
  std::ifstream reference(argv[3]);
  int n;
  double expected_energy;
  reference >> n >> expected_energy;
  std::vector<OpenMM::Vec3> positions(n), expected_forces(n);
  for (int i = 0; i < n; ++i)
    reference >> positions[i][0] >> positions[i][1] >> positions[i][2] >> expected_forces[i][0] >>
        expected_forces[i][1] >> expected_forces[i][2];
  int failures = 0;
  for (const char* name : {"Reference", "CPU"}) {
    OpenMM::VerletIntegrator integrator(0.001);
    OpenMM::Context context(*system, integrator, OpenMM::Platform::getPlatformByName(name));
    context.setPositions(positions);
    OpenMM::State state = context.getState(OpenMM::State::Energy | OpenMM::State::Forces);
    const double energy = state.getPotentialEnergy();
    double max_force = 0, max_error = 0;
    for (int i = 0; i < n; ++i)
      for (int k = 0; k < 3; ++k) {
        max_force = std::max(max_force, std::abs(expected_forces[i][k]));
        max_error = std::max(max_error, std::abs(state.getForces()[i][k] - expected_forces[i][k]));
      }
    const bool ok = std::abs(energy - expected_energy) <= 1e-6 * std::abs(expected_energy) && max_error <= 1e-6 * max_force;
    std::cout << name << ": energy " << energy << " kJ/mol (expected " << expected_energy << "), max force error "
              << max_error << " of " << max_force << " kJ/mol/nm: " << (ok ? "ok" : "MISMATCH") << "\n";
    failures += ok ? 0 : 1;
  }
  return failures == 0 ? 0 : 1;
}
