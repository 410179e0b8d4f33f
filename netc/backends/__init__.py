"""Backends: functions from the graph IR to artifacts, one package each: `torch` (modules),
`codegen` (standalone source), `render` (diagrams and the HTML report). Static tables live in
`netc.analysis`; nothing here is imported by the frontend or the analysis."""
