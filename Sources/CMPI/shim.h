#ifndef DEEPDEM_CMPI_SHIM_H
#define DEEPDEM_CMPI_SHIM_H
#include <mpi.h>

// Open MPI's predefined handles are macros over addresses of global structs, which Swift
// cannot import; these accessors return them as plain values. They are valid before MPI_Init.
static inline MPI_Comm deepdem_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype deepdem_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype deepdem_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype deepdem_mpi_int(void) { return MPI_INT; }
static inline MPI_Datatype deepdem_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Op deepdem_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op deepdem_mpi_max(void) { return MPI_MAX; }
static inline void *deepdem_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Status *deepdem_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Request deepdem_mpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Errhandler deepdem_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline int deepdem_mpi_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }
static inline int deepdem_mpi_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
static inline int deepdem_mpi_max_library_version_string(void) { return MPI_MAX_LIBRARY_VERSION_STRING; }

// The MPI whose header this binary was compiled against, which fixes its ABI whatever library
// the loader finds at run time.
#define DEEPDEM_STR_(x) #x
#define DEEPDEM_STR(x) DEEPDEM_STR_(x)
static inline const char *deepdem_mpi_built_for(void) {
#if defined(OPEN_MPI)
    return "Open MPI " DEEPDEM_STR(OMPI_MAJOR_VERSION) "." DEEPDEM_STR(OMPI_MINOR_VERSION) "." DEEPDEM_STR(OMPI_RELEASE_VERSION);
#elif defined(MPICH_VERSION)
    return "MPICH " MPICH_VERSION;
#else
    return "an unknown MPI";
#endif
}
#endif
