package base

import (
	"context"
	"fmt"

	basepb "github.com/corral-project/corral/pluginapi/base/proto"
	"google.golang.org/grpc"
)

// RegisterServer serves impl's base service on s, next to the kind's service.
func RegisterServer(s *grpc.Server, impl Plugin) {
	basepb.RegisterBasePluginServer(s, &server{impl: impl})
}

// NewClient returns a Plugin that calls the base service over conn.
func NewClient(conn *grpc.ClientConn) Plugin {
	return &client{rpc: basepb.NewBasePluginClient(conn)}
}

type server struct {
	basepb.UnimplementedBasePluginServer
	impl Plugin
}

func (s *server) PluginInfo(ctx context.Context, _ *basepb.PluginInfoRequest) (*basepb.PluginInfoResponse, error) {
	info, err := s.impl.PluginInfo(ctx)
	if err != nil {
		return nil, err
	}
	return &basepb.PluginInfoResponse{
		Type:          info.Kind,
		Name:          info.Name,
		PluginVersion: info.Version,
		ApiVersions:   info.APIVersions,
	}, nil
}

func (s *server) ConfigSchema(ctx context.Context, _ *basepb.ConfigSchemaRequest) (*basepb.ConfigSchemaResponse, error) {
	schema, err := s.impl.ConfigSchema(ctx)
	if err != nil {
		return nil, err
	}
	resp := &basepb.ConfigSchemaResponse{}
	for _, a := range schema.Attributes {
		resp.Attributes = append(resp.Attributes, &basepb.Attribute{
			Name:        a.Name,
			Type:        a.Type,
			Required:    a.Required,
			DefaultJson: a.DefaultJSON,
			Description: a.Description,
		})
	}
	return resp, nil
}

func (s *server) SetConfig(ctx context.Context, req *basepb.SetConfigRequest) (*basepb.SetConfigResponse, error) {
	if err := s.impl.SetConfig(ctx, req.GetConfigJson(), req.GetApiVersion()); err != nil {
		return nil, err
	}
	return &basepb.SetConfigResponse{}, nil
}

type client struct {
	rpc basepb.BasePluginClient
}

func (c *client) PluginInfo(ctx context.Context) (*Info, error) {
	resp, err := c.rpc.PluginInfo(ctx, &basepb.PluginInfoRequest{})
	if err != nil {
		return nil, fmt.Errorf("plugin info: %w", HandleRPCError(ctx, err))
	}
	return &Info{
		Kind:        resp.GetType(),
		Name:        resp.GetName(),
		Version:     resp.GetPluginVersion(),
		APIVersions: resp.GetApiVersions(),
	}, nil
}

func (c *client) ConfigSchema(ctx context.Context) (*Schema, error) {
	resp, err := c.rpc.ConfigSchema(ctx, &basepb.ConfigSchemaRequest{})
	if err != nil {
		return nil, fmt.Errorf("config schema: %w", HandleRPCError(ctx, err))
	}
	schema := &Schema{}
	for _, a := range resp.GetAttributes() {
		schema.Attributes = append(schema.Attributes, Attribute{
			Name:        a.GetName(),
			Type:        a.GetType(),
			Required:    a.GetRequired(),
			DefaultJSON: a.GetDefaultJson(),
			Description: a.GetDescription(),
		})
	}
	return schema, nil
}

func (c *client) SetConfig(ctx context.Context, configJSON []byte, apiVersion string) error {
	_, err := c.rpc.SetConfig(ctx, &basepb.SetConfigRequest{ConfigJson: configJSON, ApiVersion: apiVersion})
	if err != nil {
		return fmt.Errorf("set config: %w", HandleRPCError(ctx, err))
	}
	return nil
}
