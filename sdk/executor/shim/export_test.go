package shim

// Request is request, for the protocol tests (package shim_test).
var Request = request
