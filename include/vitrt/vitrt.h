// Umbrella header for the vitrt library.
#pragma once

#include "vitrt/config.h"
#include "vitrt/error.h"
#include "vitrt/image.h"
#include "vitrt/model.h"
#include "vitrt/session.h"

namespace vitrt {
const char* version();
const char* git_commit();
}  // namespace vitrt
