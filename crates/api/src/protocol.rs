//! Facts of the AWS JSON 1.1 protocol as ECS uses it.

/// The `X-Amz-Target` prefix of every ECS operation.
pub const TARGET_PREFIX: &str = "AmazonEC2ContainerServiceV20141113.";

/// The content type of requests and responses.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// The region every request gets when its signature names none.
pub const DEFAULT_REGION: &str = "us-east-1";

/// The operation name from an `X-Amz-Target` header value, or `None` when the prefix is not
/// ECS's.
pub fn operation_name(target: &str) -> Option<&str> {
    target
        .strip_prefix(TARGET_PREFIX)
        .filter(|op| !op.is_empty())
}

/// The region from a SigV4 `Authorization` header's credential scope,
/// `AWS4-HMAC-SHA256 Credential=AKID/20261121/us-west-2/ecs/aws4_request, SignedHeaders=...`.
pub fn region_from_authorization(authorization: &str) -> Option<&str> {
    let credential = authorization
        .split([' ', ','])
        .find_map(|part| part.trim().strip_prefix("Credential="))?;
    let mut scope = credential.split('/');
    let _access_key = scope.next()?;
    let _date = scope.next()?;
    let region = scope.next()?;
    let valid = !region.is_empty()
        && region.len() <= 64
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    valid.then_some(region)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_parsing() {
        assert_eq!(
            operation_name("AmazonEC2ContainerServiceV20141113.RunTask"),
            Some("RunTask")
        );
        assert_eq!(operation_name("AmazonEC2ContainerServiceV20141113."), None);
        assert_eq!(operation_name("DynamoDB_20120810.GetItem"), None);
    }

    #[test]
    fn region_from_sigv4_scope() {
        let auth = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261121/eu-west-3/ecs/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc";
        assert_eq!(region_from_authorization(auth), Some("eu-west-3"));
        assert_eq!(region_from_authorization("Bearer xyz"), None);
        assert_eq!(
            region_from_authorization("AWS4-HMAC-SHA256 Credential=AK/2026/"),
            None
        );
        assert_eq!(
            region_from_authorization("AWS4-HMAC-SHA256 Credential=AK/2026/<bad>/ecs/x"),
            None
        );
    }
}
