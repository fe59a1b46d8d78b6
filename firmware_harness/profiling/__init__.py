"""How fast a model is on a Cortex-M core, from what its firmware image executes under QEMU.

Two halves, each importing only from the modules listed before it:

* shared by both: :mod:`.cache_counts` (the simulated flash-cache counts, a plain record);
* exact instruction counts: :mod:`.qemu_plugin` (the counting plugin, its build and data file),
  :mod:`.elf_symbols` (function symbols, mark addresses, the image's flash), :mod:`.execution_profile`
  (the typed counts), :mod:`.labelling` (raw counts labelled and checked), :mod:`.instruction_counts`
  (running a program with the plugin);
* the cycle model: :mod:`.errors`, :mod:`.instructions` (timing classes, operands),
  :mod:`.disassembly`, :mod:`.cores` (each core's documented costs), :mod:`.memory_system` (the
  MCU's wait states), :mod:`.cycle_estimate`, :mod:`.cycle_report` (peak check and report).

The cycle model reads only counts (``address_counts``, ``taken_counts``, flash reads, cache counts), so the two
halves do not import each other; :mod:`.segment_rows` (an Invoke's cycle rows that add up, each
priced on its own counts) and :mod:`firmware_harness.profiling.profile` join them.
"""
