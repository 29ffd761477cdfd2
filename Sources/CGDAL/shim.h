#ifndef DEEPDEM_CGDAL_SHIM_H
#define DEEPDEM_CGDAL_SHIM_H
#include <gdal.h>
#include <cpl_conv.h>
#include <cpl_string.h>
#include <cpl_error.h>
#include <ogr_srs_api.h>
#include <gdal_alg.h>
#include <gdalwarper.h>
#include <gdal_utils.h>
#endif
