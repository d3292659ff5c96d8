fn main() {
    print!("{}", kube_incident::api::crds_yaml().unwrap());
}
