// main.cpp - Catch2 entry point for test_runtime.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
