{
  "targets": [
    {
      "target_name": "block_reader",
      "sources": ["native/block-reader.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
