package admin

import (
	"context"
	"fmt"
	"strings"

	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
	"github.com/udpd/udpd/service/manager"
)

// GetConfig implements adminv1.ListenerServiceServer.
func (s *Service) GetConfig(context.Context, *adminv1.GetConfigRequest) (*adminv1.GetConfigResponse, error) {
	specs, version := s.m.Config()
	resp := &adminv1.GetConfigResponse{ConfigVersion: version, Listeners: make([]*adminv1.ListenerConfig, len(specs))}
	for i, spec := range specs {
		resp.Listeners[i] = specToProto(spec)
	}
	return resp, nil
}

// ApplyConfig implements adminv1.ListenerServiceServer.
func (s *Service) ApplyConfig(ctx context.Context, req *adminv1.ApplyConfigRequest) (*adminv1.ApplyConfigResponse, error) {
	if s.configFile != "" && !req.GetDryRun() {
		return nil, managedByFile(s.configFile)
	}
	drain, err := duration("drain_timeout", req.GetDrainTimeout())
	if err != nil {
		return nil, err
	}
	specs := make([]manager.Spec, len(req.GetListeners()))
	for i, l := range req.GetListeners() {
		specs[i] = specFromProto(l)
	}
	plan, err := s.m.Apply(manager.IfVersion(ctx, req.GetConfigVersion()), specs,
		manager.ApplyOptions{Prune: req.GetPrune(), DryRun: req.GetDryRun(), Drain: drain})
	if err != nil {
		return nil, toStatus(err)
	}
	return planToProto(plan, req.GetDryRun()), nil
}

// UpdateListener implements adminv1.ListenerServiceServer.
func (s *Service) UpdateListener(ctx context.Context, req *adminv1.UpdateListenerRequest) (*adminv1.UpdateListenerResponse, error) {
	if err := manager.ValidateID(req.GetId()); err != nil {
		return nil, toStatus(err)
	}
	if s.configFile != "" {
		return nil, managedByFile(s.configFile)
	}
	var fields []string
	for _, p := range req.GetUpdateMask().GetPaths() {
		if p == "limits" {
			fields = nil // all of them
			break
		}
		f, ok := strings.CutPrefix(p, "limits.")
		if !ok {
			return nil, invalid("update_mask", p, "names a field UpdateListener cannot change (limits.FIELD or limits)")
		}
		fields = append(fields, f)
	}
	if len(req.GetUpdateMask().GetPaths()) > 0 && req.GetLimits() == nil {
		return nil, invalid("limits", "", "is required with an update_mask")
	}
	var limits manager.Limits
	if l := limitsFromProto(req.GetLimits()); l != nil {
		limits = *l
	}
	l, err := s.m.Update(manager.IfVersion(ctx, req.GetConfigVersion()), req.GetId(), limits, fields)
	if err != nil {
		return nil, toStatus(err)
	}
	_, version := s.m.Config()
	return &adminv1.UpdateListenerResponse{Listener: listenerToProto(l), ConfigVersion: version}, nil
}

func specToProto(s manager.Spec) *adminv1.ListenerConfig {
	p := &adminv1.ListenerConfig{Id: s.ID, Address: s.Address, Workers: uint32(s.Workers)}
	if s.Limits != nil {
		p.Limits = limitsToProto(*s.Limits)
	}
	return p
}

func specFromProto(p *adminv1.ListenerConfig) manager.Spec {
	return manager.Spec{ID: p.GetId(), Address: p.GetAddress(), Workers: int(min(p.GetWorkers(), 1<<20)), Limits: limitsFromProto(p.GetLimits())}
}

func planToProto(p manager.Plan, dryRun bool) *adminv1.ApplyConfigResponse {
	resp := &adminv1.ApplyConfigResponse{
		PreviousConfigVersion: p.From,
		ConfigVersion:         p.Version,
		DryRun:                dryRun,
		Changes:               make([]*adminv1.ConfigChange, len(p.Changes)),
	}
	for i, c := range p.Changes {
		pc := &adminv1.ConfigChange{ListenerId: c.ID, Config: specToProto(c.Spec), Action: actionToProto(c.Action)}
		for _, f := range c.Fields {
			pc.Fields = append(pc.Fields, &adminv1.FieldChange{Field: f.Field, From: f.From, To: f.To})
		}
		resp.Changes[i] = pc
	}
	return resp
}

func actionToProto(a manager.Action) adminv1.ConfigChange_Action {
	switch a {
	case manager.ActionStart:
		return adminv1.ConfigChange_ACTION_START
	case manager.ActionUpdate:
		return adminv1.ConfigChange_ACTION_UPDATE
	case manager.ActionStop:
		return adminv1.ConfigChange_ACTION_STOP
	}
	panic(fmt.Sprintf("unknown action %d", a))
}
