use super::*;

#[test]
fn refusals_no_retry_can_fix_are_4xx_the_rest_is_retried() {
    let status = |code: u16| {
        kube::Error::Api(
            kube::core::Status::failure("namespaces \"gone\" not found", "NotFound")
                .with_code(code)
                .boxed(),
        )
    };
    assert!(matches!(
        api_error("cannot create incident gone/am-x", "gone", status(404)),
        ApplyError::Refused(m) if m.contains("does namespace \"gone\" exist")
    ));
    assert!(matches!(
        api_error("x", "shop", status(422)),
        ApplyError::Refused(_)
    ));
    for code in [500, 503, 429, 409, 403] {
        assert!(matches!(
            api_error("x", "shop", status(code)),
            ApplyError::Retry(_)
        ));
    }
}
