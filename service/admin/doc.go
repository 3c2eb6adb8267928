// Package admin is the gRPC edge of udpd: it implements
// udpd.admin.v1.ListenerService over a manager.Manager, translating
// protobuf requests into manager calls and manager errors into gRPC status
// codes with google.rpc.ErrorInfo and BadRequest details, and it builds the
// grpc.Server with health, reflection, logging and panic recovery.
//
// Errors follow the manager's rule (see package manager): they arrive
// wrapped, naming the operation and the listener, and toStatus in
// errors.go is the one place that turns them into a status, matching the
// sentinels with errors.Is. Nothing in admin turns a status back into an
// error to inspect it; code inside admin tests the manager's error with
// errors.Is before it becomes a status.
//
// Protobuf stops here: nothing below admin imports the generated code.
package admin
