// Package admin is the gRPC edge of udpd: it implements
// udpd.admin.v1.ListenerService over a manager.Manager, translating
// protobuf requests into manager calls and manager errors into gRPC status
// codes with google.rpc.ErrorInfo and BadRequest details, and it builds the
// grpc.Server with health, reflection, logging and panic recovery.
//
// Protobuf stops here: nothing below admin imports the generated code.
package admin
