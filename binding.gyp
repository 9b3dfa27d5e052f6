{
  "targets": [
    {
      "target_name": "doorstep",
      "sources": [
        "native/src/addon.cc",
        "native/src/errors.cc",
        "native/src/object.cc",
        "native/src/map.cc",
        "native/src/map_shape.cc",
        "native/src/link.cc",
        "native/src/ringbuf.cc",
        "native/src/testrun.cc",
        "native/src/flood.cc",
        "native/src/drain.cc"
      ],
      "include_dirs": ["<!@(node -p \"require('node-addon-api').include\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
      "libraries": ["-lbpf", "-lelf", "-lz"]
    }
  ]
}
