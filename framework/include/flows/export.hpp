#pragma once
// Plugins are built with hidden visibility. Types that cross the plugin
// boundary by typeinfo (interfaces, exceptions) must stay visible so that
// dynamic_cast and catch work between a plugin and its host.
#define FLOWS_API __attribute__((visibility("default")))
