//! Resource agents behind one trait (start, stop, monitor, probe, validate): the built-ins and
//! the OCF adapter. The simulator drives simulated agents through the same effects.
