#!/bin/sh
# Regenerates models/oc from the OpenConfig YANG in $YANG_DIR (default
# ../shared/yang, relative to the repository root) plus the project's own
# modules in models/yang. Called by `go generate ./models` and `make models`.
# -include_model_data writes ΓModelData: the modules, organizations and
# versions gNMI Capabilities announces.
set -eu
cd "$(dirname "$0")/.."
Y=${YANG_DIR:-../shared/yang}
L=models/yang
go tool generator \
  -path="$Y,$L" \
  -output_file=models/oc/oc.go \
  -generate_path_structs -path_structs_output_file=models/oc/ocpath.go \
  -package_name=oc -compress_paths=true -prefer_operational_state -ignore_shadow_schema_paths \
  -generate_fakeroot -fakeroot_name=device \
  -exclude_modules=ietf-interfaces \
  -shorten_enum_leaf_names -trim_enum_openconfig_prefix \
  -typedef_enum_with_defmod -enum_suffix_for_simple_union_enums \
  -generate_getters -generate_leaf_getters -generate_append -generate_rename -generate_delete \
  -generate_populate_defaults -generate_simple_unions \
  -include_model_data \
  "$Y/openconfig-interfaces.yang" "$Y/openconfig-if-ip.yang" "$Y/openconfig-if-ethernet.yang" \
  "$Y/openconfig-network-instance.yang" "$Y/openconfig-routing-policy.yang" "$Y/openconfig-bgp-policy.yang" \
  "$Y/openconfig-acl.yang" "$Y/openconfig-system.yang" "$Y/openconfig-system-grpc.yang" "$Y/openconfig-platform.yang" "$Y/openconfig-lldp.yang" \
  "$L/switchd.yang" "$L/switchd-deviations.yang"
gofmt -w -s models/oc/oc.go models/oc/ocpath.go

# The generated init unzips the whole schema (~70 ms), which every process
# of the binary would pay, the CNI plugin on each call included. Make it
# lazy: init keeps only the enum tables, and every use of SchemaTree goes
# through LazySchemaTree (models/oc/schema.go, hand-written).
perl -0pi -e 's/func init\(\) \{\n\tvar err error\n\tinitΛEnumTypes\(\)\n\tif SchemaTree, err = UnzipSchema\(\); err != nil \{\n\t\tpanic\("schema error: " \+ err.Error\(\)\)\n\t\}\n\}/func init() {\n\tinitΛEnumTypes()\n}/ or die "models/gen.sh: generated init not found\n"' models/oc/oc.go
perl -pi -e 's/\bSchemaTree\[/LazySchemaTree()[/g' models/oc/oc.go
