package admin_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
	"github.com/udpd/udpd/service/admin"
)

func TestGetVersion(t *testing.T) {
	v := admin.Version{Version: "v1.2.0-3-gabc1234", Revision: "abc1234def", GoVersion: "go1.26.8"}
	e := serve(t, nil, admin.Options{Version: v})
	got, err := e.client.GetVersion(t.Context(), &adminv1.GetVersionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := &adminv1.GetVersionResponse{Version: v.Version, Revision: v.Revision, GoVersion: v.GoVersion}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("GetVersion (-want +got):\n%s", diff)
	}
}
