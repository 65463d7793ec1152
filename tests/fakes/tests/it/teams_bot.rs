use std::collections::HashSet;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use pagehook_fakes::{
    BOT_FRAMEWORK_ISSUER, BOT_FRAMEWORK_SCOPE, FakeTeamsBot, Fault, Inbound, TEAMS_CHANNEL_ID,
    TeamsUser, TokenSpec, post_activity,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::client;

const APP: &str = "11111111-2222-3333-4444-555555555555";
const TENANT: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const SECRET: &str = "s3cr3t~value";
const ALICE: &str = "29:1alice-teams-id";

fn fake() -> FakeTeamsBot {
    let t = FakeTeamsBot::start();
    t.register_app(APP, TENANT, SECRET);
    t.add_user(TeamsUser {
        id: ALICE.into(),
        aad_object_id: "0a0a0a0a-0000-0000-0000-00000000a11c".into(),
        name: "Alice Example".into(),
        email: "alice@example.com".into(),
        user_principal_name: "alice@example.com".into(),
        tenant_id: TENANT.into(),
    });
    t
}

fn token_request(t: &FakeTeamsBot, tenant: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let r = client()
        .post(t.token_url(tenant))
        .form(form)
        .send()
        .unwrap();
    (r.status(), r.json().unwrap())
}

fn good_form() -> Vec<(&'static str, &'static str)> {
    vec![
        ("grant_type", "client_credentials"),
        ("client_id", APP),
        ("client_secret", SECRET),
        ("scope", BOT_FRAMEWORK_SCOPE),
    ]
}

fn access_token(t: &FakeTeamsBot) -> String {
    let (status, body) = token_request(t, TENANT, &good_form());
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

fn call(
    t: &FakeTeamsBot,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value, Option<String>) {
    let mut req = client().request(method, format!("{}{path}", t.service_url()));
    if let Some(tok) = token {
        req = req.bearer_auth(tok);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().unwrap();
    let status = r.status();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let text = r.text().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        retry,
    )
}

fn create_params() -> Value {
    json!({
        "bot": {"id": format!("28:{APP}")},
        "isGroup": false,
        "members": [{"id": ALICE}],
        "tenantId": TENANT,
    })
}

#[test]
fn teams_bot_issues_tokens_and_refuses_as_entra_does() {
    let t = fake();
    let (status, body) = token_request(&t, TENANT, &good_form());
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["ext_expires_in"], 3599);
    assert!(body["access_token"].as_str().is_some_and(|s| s.len() > 20));

    let mut wrong_secret = good_form();
    wrong_secret[2] = ("client_secret", "nope");
    let (status, body) = token_request(&t, TENANT, &wrong_secret);
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS7000215:")
    );
    assert_eq!(body["error_codes"], json!([7000215]));

    let (status, body) = token_request(&t, "ffffffff-0000-0000-0000-000000000000", &good_form());
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS90002:")
    );

    let mut unknown_client = good_form();
    unknown_client[1] = ("client_id", "99999999-0000-0000-0000-000000000000");
    let (status, body) = token_request(&t, TENANT, &unknown_client);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unauthorized_client");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS700016:")
    );

    let mut scope = good_form();
    scope[3] = ("scope", "https://graph.microsoft.com/.default");
    assert_eq!(
        token_request(&t, TENANT, &scope).1["error"],
        "invalid_scope"
    );
    let mut grant = good_form();
    grant[0] = ("grant_type", "password");
    assert_eq!(
        token_request(&t, TENANT, &grant).1["error"],
        "unsupported_grant_type"
    );

    assert_eq!(t.token_requests(), 6);
    assert_eq!(t.tokens_issued(), 1);
    // The secret travels in the body, which the log keeps; nothing else is redacted away.
    assert!(t.requests().iter().all(|r| r.path.starts_with("/login/")));

    t.set_token_lifetime(Duration::from_secs(60));
    assert_eq!(token_request(&t, TENANT, &good_form()).1["expires_in"], 60);
}

#[test]
fn teams_bot_minted_tokens_verify_against_the_served_jwks_and_flawed_ones_do_not() {
    let t = fake();
    let meta: Value = client()
        .get(t.openid_metadata_url())
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(meta["issuer"], BOT_FRAMEWORK_ISSUER);
    assert_eq!(
        meta["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
    assert_eq!(meta["jwks_uri"], t.jwks_url());
    assert_eq!(t.metadata_fetches(), 1);

    let service_url = t.service_url();
    // What a bot must check (REFERENCE.md): signature by a served key endorsed for the
    // activity's channel, issuer, audience, lifetime with 5 minutes' skew, serviceurl.
    let verify = |token: &str| -> Result<(), String> {
        let jwks: Value = client().get(t.jwks_url()).send().unwrap().json().unwrap();
        let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
        if header.alg != Algorithm::RS256 {
            return Err(format!("alg {:?}", header.alg));
        }
        let kid = header.kid.ok_or("no kid")?;
        let jwk = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid.as_str())
            .ok_or("unknown kid")?;
        if !jwk["endorsements"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == TEAMS_CHANNEL_ID)
        {
            return Err("not endorsed for msteams".into());
        }
        let key = DecodingKey::from_rsa_components(
            jwk["n"].as_str().unwrap(),
            jwk["e"].as_str().unwrap(),
        )
        .map_err(|e| e.to_string())?;
        let mut v = Validation::new(Algorithm::RS256);
        v.set_issuer(&[BOT_FRAMEWORK_ISSUER]);
        v.set_audience(&[APP]);
        v.leeway = 300;
        v.validate_nbf = true;
        let data = jsonwebtoken::decode::<Value>(token, &key, &v).map_err(|e| e.to_string())?;
        if data.claims["serviceurl"] != service_url.as_str() {
            return Err("serviceurl".into());
        }
        Ok(())
    };
    let good = t.mint_token(&TokenSpec::new(APP, &service_url));
    verify(&good).expect("a valid token verifies");
    let header = jsonwebtoken::decode_header(&good).unwrap();
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert_eq!(header.kid.as_deref(), Some(t.signing_kid().as_str()));

    let mut seen = HashSet::new();
    for (name, spec) in TokenSpec::flawed_variants(APP, &service_url) {
        assert!(seen.insert(name));
        let token = t.mint_token(&spec);
        assert!(verify(&token).is_err(), "{name} verified");
    }

    // Rotation: the new kid signs; a kept old key still verifies, a dropped one does not.
    let old = t.signing_kid();
    let new = t.rotate_keys(true);
    assert_ne!(old, new);
    let by_old =
        TokenSpec::new(APP, &service_url).signed_by(pagehook_fakes::Signer::Kid(old.clone()));
    verify(&t.mint_token(&by_old)).expect("kept key verifies");
    verify(&t.mint_token(&TokenSpec::new(APP, &service_url))).expect("new key verifies");
    t.rotate_keys(false);
    assert!(verify(&t.mint_token(&by_old)).is_err());
    assert_eq!(t.jwks()["keys"].as_array().unwrap().len(), 1);
    assert!(t.keys_fetches() >= 2);
}

#[test]
fn teams_bot_create_conversation_send_reply_update_and_member() {
    let t = fake();
    let install = t.activity(APP, ALICE, Inbound::InstallationAdd);
    assert_eq!(install["type"], "installationUpdate");
    assert_eq!(install["action"], "add");
    assert_eq!(install["channelId"], "msteams");
    assert_eq!(install["serviceUrl"], t.service_url());
    assert_eq!(install["recipient"]["id"], format!("28:{APP}"));
    assert_eq!(install["conversation"]["conversationType"], "personal");
    assert_eq!(install["channelData"]["tenant"]["id"], TENANT);
    assert!(t.is_installed(ALICE));

    let token = access_token(&t);
    let (status, body, _) = call(
        &t,
        reqwest::Method::POST,
        "v3/conversations",
        Some(&token),
        Some(create_params()),
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let conv = body["id"].as_str().unwrap().to_string();
    assert_eq!(conv, t.conversation_id_for(ALICE));
    assert_eq!(install["conversation"]["id"], conv.as_str());
    // The same user always gets the same conversation.
    let again = call(
        &t,
        reqwest::Method::POST,
        "v3/conversations",
        Some(&token),
        Some(create_params()),
    );
    assert_eq!(again.1["id"], conv.as_str());

    let card = json!({"contentType": "application/vnd.microsoft.card.adaptive",
        "content": {"type": "AdaptiveCard", "version": "1.5", "body": []}});
    let (status, sent, _) = call(
        &t,
        reqwest::Method::POST,
        &format!("v3/conversations/{conv}/activities"),
        Some(&token),
        Some(json!({"type": "message", "text": "Page created", "attachments": [card]})),
    );
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let sent_id = sent["id"].as_str().unwrap().to_string();

    let msg = t.activity(APP, ALICE, Inbound::Message("hi".into()));
    let msg_id = msg["id"].as_str().unwrap();
    let (status, _, _) = call(
        &t,
        reqwest::Method::POST,
        &format!("v3/conversations/{conv}/activities/{msg_id}"),
        Some(&token),
        Some(json!({"type": "message", "text": "hello back"})),
    );
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, _) = call(
        &t,
        reqwest::Method::PUT,
        &format!("v3/conversations/{conv}/activities/{sent_id}"),
        Some(&token),
        Some(json!({"type": "message", "text": "Page updated"})),
    );
    assert_eq!(status, StatusCode::OK);

    let sent = t.sent();
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[0].conversation_id, conv);
    assert_eq!(sent[0].user_id, ALICE);
    assert_eq!(sent[0].text.as_deref(), Some("Page created"));
    assert_eq!(sent[0].attachments.len(), 1);
    assert_eq!(sent[1].reply_to_id.as_deref(), Some(msg_id));
    assert!(sent[2].update && sent[2].activity_id == sent_id);

    let (status, member, _) = call(
        &t,
        reqwest::Method::GET,
        &format!("v3/conversations/{conv}/members/{ALICE}"),
        Some(&token),
        None,
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!(member["email"], "alice@example.com");
    assert_eq!(member["userPrincipalName"], "alice@example.com");
    assert_eq!(member["tenantId"], TENANT);
    let (status, err, _) = call(
        &t,
        reqwest::Method::GET,
        &format!("v3/conversations/{conv}/members/29:someone-else"),
        Some(&token),
        None,
    );
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(err["error"]["code"], "MemberNotFoundInConversation");

    // The log keeps the scheme but never the bearer token itself.
    let log = t.requests();
    assert!(
        log.iter()
            .all(|r| !r.headers.iter().any(|(_, v)| v.contains(&token)))
    );
    assert!(
        log.iter()
            .any(|r| r.header("authorization") == Some("Bearer [redacted]"))
    );
}

#[test]
fn teams_bot_refuses_uninstalled_users_unknown_routes_bad_bodies_and_bad_tokens() {
    let t = fake();
    let token = access_token(&t);
    let (status, err, _) = call(
        &t,
        reqwest::Method::POST,
        "v3/conversations",
        Some(&token),
        Some(create_params()),
    );
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(err["error"]["code"], "Forbidden");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not installed")
    );

    t.install_for(ALICE);
    let conv = t.conversation_id_for(ALICE);
    t.uninstall_for(ALICE);
    let (status, err, _) = call(
        &t,
        reqwest::Method::POST,
        &format!("v3/conversations/{conv}/activities"),
        Some(&token),
        Some(json!({"type": "message", "text": "x"})),
    );
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("MessageWritesBlocked")
    );
    t.install_for(ALICE);

    // Routes the spec does not describe.
    assert_eq!(
        call(&t, reqwest::Method::POST, "v3/nope", Some(&token), None).0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(
            &t,
            reqwest::Method::POST,
            "v4/conversations",
            Some(&token),
            None
        )
        .0,
        StatusCode::NOT_FOUND
    );
    let (status, err, _) = call(
        &t,
        reqwest::Method::PATCH,
        &format!("v3/conversations/{conv}/activities"),
        Some(&token),
        None,
    );
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(err["error"]["code"].is_string());

    // Bodies that do not fit the spec.
    let path = format!("v3/conversations/{conv}/activities");
    for bad in [
        json!({"text": "no type"}),
        json!({"type": "bogus", "text": "x"}),
        json!({"type": "message", "text": 42}),
        json!({"type": "message", "attachments": {"not": "an array"}}),
    ] {
        let (status, err, _) = call(
            &t,
            reqwest::Method::POST,
            &path,
            Some(&token),
            Some(bad.clone()),
        );
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(err["error"]["code"], "BadArgument", "{bad}");
    }
    assert_eq!(
        call(&t, reqwest::Method::POST, &path, Some(&token), None).0,
        StatusCode::BAD_REQUEST
    );
    let mut no_tenant = create_params();
    no_tenant.as_object_mut().unwrap().remove("tenantId");
    assert_eq!(
        call(
            &t,
            reqwest::Method::POST,
            "v3/conversations",
            Some(&token),
            Some(no_tenant)
        )
        .0,
        StatusCode::BAD_REQUEST
    );

    // Tokens: none, made up, expired.
    let ok = json!({"type": "message", "text": "x"});
    assert_eq!(
        call(&t, reqwest::Method::POST, &path, None, Some(ok.clone())).0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(
            &t,
            reqwest::Method::POST,
            &path,
            Some("made-up"),
            Some(ok.clone())
        )
        .0,
        StatusCode::UNAUTHORIZED
    );
    t.expire_tokens();
    let (status, body, _) = call(
        &t,
        reqwest::Method::POST,
        &path,
        Some(&token),
        Some(ok.clone()),
    );
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body["message"],
        "Authorization has been denied for this request."
    );
    let fresh = access_token(&t);
    assert_eq!(
        call(&t, reqwest::Method::POST, &path, Some(&fresh), Some(ok)).0,
        StatusCode::CREATED
    );
    assert_eq!(t.sent().len(), 1);
}

#[test]
fn teams_bot_rate_limits_per_conversation_and_serves_injected_faults() {
    let t = fake();
    t.install_for(ALICE);
    let conv = t.conversation_id_for(ALICE);
    let token = access_token(&t);
    let path = format!("v3/conversations/{conv}/activities");
    let msg = json!({"type": "message", "text": "x"});
    for i in 0..7 {
        let (status, _, _) = call(
            &t,
            reqwest::Method::POST,
            &path,
            Some(&token),
            Some(msg.clone()),
        );
        assert_eq!(status, StatusCode::CREATED, "send {i}");
    }
    let (status, err, retry) = call(
        &t,
        reqwest::Method::POST,
        &path,
        Some(&token),
        Some(msg.clone()),
    );
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(err["error"]["code"].is_string());
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(t.rate_limited(), 1);
    assert_eq!(t.sent().len(), 7);
    assert!(t.requests().last().unwrap().rate_limited);

    t.disable_rate_limits();
    t.inject(
        "Conversations_SendToConversation",
        Fault::RateLimited {
            retry_after_secs: 3,
        },
    );
    t.inject("Conversations_SendToConversation", Fault::Status(502));
    let (status, _, retry) = call(
        &t,
        reqwest::Method::POST,
        &path,
        Some(&token),
        Some(msg.clone()),
    );
    assert_eq!(
        (status, retry.as_deref()),
        (StatusCode::TOO_MANY_REQUESTS, Some("3"))
    );
    assert_eq!(
        call(
            &t,
            reqwest::Method::POST,
            &path,
            Some(&token),
            Some(msg.clone())
        )
        .0,
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(
        call(
            &t,
            reqwest::Method::POST,
            &path,
            Some(&token),
            Some(msg.clone())
        )
        .0,
        StatusCode::CREATED
    );
    assert_eq!(t.faults_left("Conversations_SendToConversation"), 0);

    t.inject("token", Fault::Reset);
    assert!(
        client()
            .post(t.token_url(TENANT))
            .form(&good_form())
            .send()
            .is_err()
    );
    t.inject("keys", Fault::Status(500));
    assert_eq!(
        client().get(t.jwks_url()).send().unwrap().status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
}

#[test]
fn teams_bot_delivers_inbound_activities_with_a_token() {
    let t = fake();
    // The fake itself stands in for the host's endpoint: any listener will do, and what
    // matters is the request that arrives. Deliver to the fake's own unknown path and read
    // the log.
    let activity = t.activity(APP, ALICE, Inbound::Message("hello bot".into()));
    assert_eq!(activity["type"], "message");
    assert_eq!(activity["from"]["id"], ALICE);
    assert_eq!(
        activity["from"]["aadObjectId"],
        "0a0a0a0a-0000-0000-0000-00000000a11c"
    );
    let url = format!("{}/api/messages", t.base_url());
    let resp = t.deliver(&url, APP, &activity);
    assert_eq!(resp.status, 404);
    let req = t.requests().into_iter().last().unwrap();
    assert_eq!(req.path, "/api/messages");
    assert_eq!(req.header("authorization"), Some("Bearer [redacted]"));
    let body: Value = serde_json::from_str(&req.body).unwrap();
    assert_eq!(body, activity);
    assert_eq!(post_activity(&url, &activity, None).status, 404);

    let invoke = t.activity(
        APP,
        ALICE,
        Inbound::CardAction {
            reply_to_id: "1".into(),
            verb: "ack".into(),
            data: json!({"page": 7}),
        },
    );
    assert_eq!(invoke["type"], "invoke");
    assert_eq!(invoke["name"], "adaptiveCard/action");
    assert_eq!(invoke["value"]["action"]["verb"], "ack");
    let added = t.activity(APP, ALICE, Inbound::BotAdded);
    assert_eq!(added["membersAdded"][0]["id"], format!("28:{APP}"));
    assert_ne!(added["id"], invoke["id"]);
}
