// Filled in with the communicator's multi-rank checks.
print("mpi-probe")
