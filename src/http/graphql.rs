//! `POST /graphql`: the GraphQL endpoint (login, logout, whoami) of SPEC 5,
//! executed synchronously by juniper.
//!
//! The handler reads the JSON body (400 when it is not JSON or has no string
//! `query`), asks its context for the bearer caller once, runs the
//! operation, and picks
//! the HTTP status from what the resolvers reported in the [`Context`]: 401
//! with the fixed body when `whoami` or `logout` ran without a valid token,
//! 429 with `Retry-After` when `login` was throttled. A query that fails to
//! parse or validate gets juniper's `errors` response with 400. Resolvers
//! never see tiny_http; the SQL they need lives in `users` and
//! `jwt_sessions`.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;

use juniper::http::GraphQLRequest;
use juniper::meta::MetaType;
use juniper::{
    ArcStr, Arguments, EmptySubscription, ExecutionResult, Executor, FieldError, FieldResult,
    GraphQLObject, GraphQLType, GraphQLValue, Registry, RootNode, arcstr, graphql_value,
};

use crate::accounts::{self, Client, Credentials, Login};
use crate::clock::rfc3339;
use crate::http::bearer::BearerCaller;
use crate::http::context::Ctx;
use crate::http::reply::{HttpError, Reply};
use crate::jwt;
use crate::jwt_sessions;
use crate::metrics::{LoginKind, LoginOutcome};

/// Answers one GraphQL request.
pub fn handle(ctx: &Ctx) -> Result<Reply, HttpError> {
    let graphql_request = parse_body(&ctx.request.body)?;
    let caller = match ctx.bearer() {
        Ok(caller) => Some(caller),
        Err(HttpError::Unauthorized) => None,
        Err(other) => return Err(other),
    };
    let context = Context {
        ctx,
        caller,
        unauthenticated: Cell::new(false),
        throttled: Cell::new(None),
        login_attempted: Cell::new(false),
        issued_jti: RefCell::new(None),
        failure: RefCell::new(None),
    };
    let schema = schema();
    if let Some(refusal) = refuse_more_than_one_login(&graphql_request, &schema) {
        return Ok(refusal);
    }
    let response = graphql_request.execute_sync(&schema, &context);
    let failure = context.failure.into_inner();
    if failure.is_some() || context.unauthenticated.get() {
        // The client gets no token, so the row of a `login` earlier in this
        // operation must not outlive the request either.
        if let Some(jti) = context.issued_jti.into_inner() {
            jwt_sessions::delete(ctx.conn, &jti)?;
        }
        return Err(failure.unwrap_or(HttpError::Unauthorized));
    }
    // Straight to bytes: a `serde_json::Value` would sort the fields, and
    // GraphQL answers them in the order the query asked for them.
    let body = serde_json::to_vec(&response)
        .map_err(|error| anyhow::anyhow!("failed to serialize a GraphQL response: {error}"))?;
    if let Some(retry_after) = context.throttled.get() {
        let answer = Reply::new(429, "application/json", body);
        return Err(HttpError::TooManyRequests { retry_after, answer });
    }
    // A query that did not parse or validate, or named no operation: 400.
    let status = if response.is_ok() { 200 } else { 400 };
    Ok(Reply::new(status, "application/json", body))
}

/// What the resolvers of one request share: the request's context (its
/// connection, the app, `now`), the caller behind the bearer token if it is
/// valid, and what went wrong that the HTTP status must show.
pub struct Context<'a> {
    ctx: &'a Ctx<'a>,
    caller: Option<BearerCaller>,
    /// Set when a field that needs a token ran without a valid one.
    unauthenticated: Cell<bool>,
    /// Set to the seconds to wait when `login` was throttled.
    throttled: Cell<Option<i64>>,
    /// One `login` per request: each costs a password hash.
    login_attempted: Cell<bool>,
    /// The `jti` of the row `login` stored, if it did.
    issued_jti: RefCell<Option<String>>,
    /// A database error in a resolver; it becomes the response (500 or 503).
    failure: RefCell<Option<HttpError>>,
}

impl juniper::Context for Context<'_> {}

impl Context<'_> {
    /// The caller, or the error that makes the response a 401.
    fn require_caller(&self) -> FieldResult<&BearerCaller> {
        match &self.caller {
            Some(caller) => Ok(caller),
            None => {
                self.unauthenticated.set(true);
                Err(coded_error("Received invalid authentication token", "AuthenticationInvalid"))
            }
        }
    }

    /// Keeps a database error for the handler and gives the resolver a
    /// generic field error (the cause is logged once, by the handler).
    fn fail(&self, error: impl Into<HttpError>) -> FieldError {
        self.failure.borrow_mut().get_or_insert(error.into());
        coded_error("internal server error", "InternalServerError")
    }
}

/// The schema of SPEC 5.
///
/// `Query` and `Mutation` implement juniper's traits by hand rather than
/// through `#[graphql_object]`: the macro also generates the async
/// resolvers, which require a `Sync` context, and ours holds the worker's
/// SQLite connection, which is not. Execution here is synchronous only.
type Schema<'a> = RootNode<Query<'a>, Mutation<'a>, EmptySubscription<Context<'a>>>;

fn schema<'a>() -> Schema<'a> {
    RootNode::new(Query(PhantomData), Mutation(PhantomData), EmptySubscription::new())
}

/// `type Query { whoami: Whoami! }`
pub struct Query<'a>(PhantomData<&'a ()>);

impl<'a> GraphQLType for Query<'a> {
    fn name(_: &()) -> Option<ArcStr> {
        Some(arcstr::literal!("Query"))
    }

    fn meta(_: &(), registry: &mut Registry) -> MetaType {
        let fields = [registry
            .field::<Whoami>(arcstr::literal!("whoami"), &())
            .description("The user behind the bearer token, and when the token expires.")];
        registry.build_object_type::<Query<'a>>(&(), &fields).into_meta()
    }
}

impl<'a> GraphQLValue for Query<'a> {
    type Context = Context<'a>;
    type TypeInfo = ();

    fn type_name(&self, _: &()) -> Option<ArcStr> {
        <Query<'a> as GraphQLType>::name(&())
    }

    // Fragments on the type ask for it.
    fn concrete_type_name(&self, _: &Context<'a>, _: &()) -> String {
        String::from("Query")
    }

    fn resolve_field(
        &self,
        _: &(),
        field_name: &str,
        _: &Arguments,
        executor: &Executor<Context<'a>>,
    ) -> ExecutionResult {
        let context = executor.context();
        match field_name {
            "whoami" => executor.resolve_with_ctx(&(), &whoami(context)?),
            // Validation only lets through the fields `meta` declares.
            other => Err(FieldError::from(format!("unknown field `{other}` on `Query`"))),
        }
    }
}

/// `type Mutation { login(username: String!, password: String!): LoginResponse!  logout: Boolean! }`
pub struct Mutation<'a>(PhantomData<&'a ()>);

impl<'a> GraphQLType for Mutation<'a> {
    fn name(_: &()) -> Option<ArcStr> {
        Some(arcstr::literal!("Mutation"))
    }

    fn meta(_: &(), registry: &mut Registry) -> MetaType {
        let username = registry.arg::<String>(arcstr::literal!("username"), &());
        let password = registry.arg::<String>(arcstr::literal!("password"), &());
        let fields = [
            registry
                .field::<LoginResponse>(arcstr::literal!("login"), &())
                .argument(username)
                .argument(password)
                .description("Signs in and returns a new token. Throttled like the sign-in form."),
            registry
                .field::<bool>(arcstr::literal!("logout"), &())
                .description("Revokes the calling token."),
        ];
        registry.build_object_type::<Mutation<'a>>(&(), &fields).into_meta()
    }
}

impl<'a> GraphQLValue for Mutation<'a> {
    type Context = Context<'a>;
    type TypeInfo = ();

    fn type_name(&self, _: &()) -> Option<ArcStr> {
        <Mutation<'a> as GraphQLType>::name(&())
    }

    // Fragments on the type ask for it.
    fn concrete_type_name(&self, _: &Context<'a>, _: &()) -> String {
        String::from("Mutation")
    }

    fn resolve_field(
        &self,
        _: &(),
        field_name: &str,
        arguments: &Arguments,
        executor: &Executor<Context<'a>>,
    ) -> ExecutionResult {
        let context = executor.context();
        match field_name {
            "login" => {
                let username = required_string(arguments, "username")?;
                let password = required_string(arguments, "password")?;
                executor.resolve_with_ctx(&(), &login(context, &username, &password)?)
            }
            "logout" => executor.resolve_with_ctx(&(), &logout(context)?),
            other => Err(FieldError::from(format!("unknown field `{other}` on `Mutation`"))),
        }
    }
}

/// A new login token.
#[derive(GraphQLObject)]
pub struct LoginResponse {
    token: String,
    /// When the token expires, RFC 3339 in UTC.
    expires: String,
}

/// Who the caller is.
#[derive(GraphQLObject)]
pub struct Whoami {
    username: String,
    /// `admin`, `manager` or `user`.
    role: String,
    /// When the token expires, RFC 3339 in UTC.
    expires: String,
}

/// The `whoami` query.
fn whoami(context: &Context<'_>) -> FieldResult<Whoami> {
    let caller = context.require_caller()?;
    Ok(Whoami {
        username: caller.user.username.clone(),
        role: caller.user.role.as_str().to_owned(),
        expires: rfc3339(caller.expires_at),
    })
}

/// The `logout` mutation: revokes the calling token's row.
fn logout(context: &Context<'_>) -> FieldResult<bool> {
    let caller = context.require_caller()?;
    let ctx = context.ctx;
    jwt_sessions::revoke(ctx.conn, &caller.jti, ctx.now, Some(caller.user.id))
        .map_err(|error| context.fail(error))?;
    Ok(true)
}

/// The `login` mutation: the login sequence of the sign-in form
/// (`accounts::login`), storing a row and returning its token.
fn login(context: &Context<'_>, username: &str, password: &str) -> FieldResult<LoginResponse> {
    if context.login_attempted.replace(true) {
        return Err(coded_error("only one `login` per request", "BadRequest"));
    }
    let ctx = context.ctx;
    let app = ctx.app;
    let now = ctx.now;
    let client_addr = ctx.request.client_addr(app.settings.trust_proxy_headers);
    let client = Client { addr: &client_addr, user_agent: ctx.request.user_agent() };
    let expires_at = now + app.settings.jwt_lifetime;
    let login = accounts::login(
        ctx.conn,
        (&app.throttle, &app.decoy),
        Credentials { username, password },
        &client,
        now,
        |verified| {
            let jti = uuid::Uuid::new_v4().to_string();
            let stored =
                accounts::start_jwt_session(ctx.conn, verified, &jti, now, expires_at, &client)?;
            Ok(stored.then(|| (jti, verified.user.clone())))
        },
    )
    .map_err(|error| context.fail(error))?;
    app.metrics.record_login(LoginKind::Jwt, LoginOutcome::of(&login));
    let (jti, user) = match login {
        Login::Started(started) => started,
        Login::Refused => return Err(coded_error("Invalid credentials", "InvalidCredentials")),
        Login::Throttled { retry_after } => {
            context.throttled.set(Some(retry_after));
            let seconds = i32::try_from(retry_after).unwrap_or(i32::MAX);
            return Err(FieldError::new(
                "Too many failed attempts. Please try again later.",
                graphql_value!({ "code": "Throttled", "retryAfter": seconds }),
            ));
        }
    };
    let token = jwt::issue(app.jwt_verifier.key(), &user, &jti, now, expires_at)
        .map_err(|error| context.fail(error))?;
    context.issued_jti.replace(Some(jti));
    Ok(LoginResponse { token, expires: rfc3339(expires_at) })
}

/// At most one `login` per operation, checked on the parsed document before
/// anything runs: the answer of a second one would be an error, nulling the
/// whole `data` (`login` is non-null) while the first had stored a session
/// whose token nobody receives. Counts `login` fields in the operation to be
/// run, fragments included (a fragment spread twice counts twice). `None`
/// lets juniper answer whatever else is wrong with the request.
fn refuse_more_than_one_login(request: &GraphQLRequest, schema: &Schema<'_>) -> Option<Reply> {
    use juniper::{Definition, Selection};
    let document = juniper::parser::parse_document_source(&request.query, &schema.schema).ok()?;
    let wanted = request.operation_name.as_deref();
    let mut operations = document.iter().filter_map(|definition| match definition {
        Definition::Operation(operation) => Some(operation),
        Definition::Fragment(_) => None,
    });
    let operation = match wanted {
        Some(name) => operations
            .find(|operation| operation.item.name.as_ref().is_some_and(|n| n.item == name))?,
        None => {
            let first = operations.next()?;
            if operations.next().is_some() {
                return None;
            }
            first
        }
    };
    let fragments: std::collections::HashMap<&str, &Vec<Selection<'_, _>>> = document
        .iter()
        .filter_map(|definition| match definition {
            Definition::Fragment(fragment) => {
                Some((fragment.item.name.item, &fragment.item.selection_set))
            }
            Definition::Operation(_) => None,
        })
        .collect();

    // (selections, depth); fragments nest at most this deep here, and a cycle
    // (refused by validation anyway) cannot loop.
    const DEEPEST: usize = 32;
    let mut logins = Vec::new();
    let mut pending = vec![(&operation.item.selection_set, 0)];
    while let Some((selections, depth)) = pending.pop() {
        if depth > DEEPEST {
            continue;
        }
        for selection in selections {
            match selection {
                Selection::Field(field) => {
                    if field.item.name.item == "login" {
                        logins.push(field.span.start);
                    }
                }
                Selection::InlineFragment(inline) => {
                    pending.push((&inline.item.selection_set, depth + 1));
                }
                Selection::FragmentSpread(spread) => {
                    if let Some(selections) = fragments.get(spread.item.name.item) {
                        pending.push((selections, depth + 1));
                    }
                }
            }
        }
    }
    if logins.len() <= 1 {
        return None;
    }
    logins.sort_by_key(|position| position.index());
    let locations: Vec<serde_json::Value> = logins
        .iter()
        .map(|position| {
            serde_json::json!({ "line": position.line() + 1, "column": position.column() + 1 })
        })
        .collect();
    let body = serde_json::json!({
        "errors": [{
            "message": "at most one `login` per operation",
            "locations": locations,
            "extensions": { "code": "BadRequest" },
        }]
    });
    Some(Reply::json(400, &body))
}

/// A required `String!` argument (validation has checked it is there).
fn required_string(arguments: &Arguments, name: &str) -> FieldResult<String> {
    arguments.get::<String>(name)?.ok_or_else(|| FieldError::from(format!("missing `{name}`")))
}

/// A field error with `extensions.code`.
fn coded_error(message: &str, code: &str) -> FieldError {
    FieldError::new(message, graphql_value!({ "code": code }))
}

/// The body as a GraphQL request: a JSON object with a string `query` and
/// optional `variables` and `operationName`.
fn parse_body(body: &[u8]) -> Result<GraphQLRequest, HttpError> {
    let bad = |reason: &str| HttpError::BadRequest(reason.to_owned());
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| bad("the body is not JSON"))?;
    if !value.get("query").is_some_and(serde_json::Value::is_string) {
        return Err(bad("the body has no string `query`"));
    }
    // juniper would take any JSON here and treat what is not an object as
    // no variables at all (SPEC 5: 400).
    if !value.get("variables").is_none_or(|v| v.is_object() || v.is_null()) {
        return Err(bad("`variables` must be an object or null"));
    }
    if !value.get("operationName").is_none_or(|v| v.is_string() || v.is_null()) {
        return Err(bad("`operationName` must be a string or null"));
    }
    serde_json::from_value(value)
        .map_err(|_| bad("`operationName` must be a string and `variables` an object"))
}
