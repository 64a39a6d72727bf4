//! Login JWTs: issuing and verifying the tokens themselves (HS256 via
//! jwt-simple). Which rows back them lives in `jwt_sessions`.
