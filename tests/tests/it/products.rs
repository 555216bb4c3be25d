//! Products: partner CRUD and the app's view.

use portal_tests::{bearer, key, TestApp};
use serde_json::json;

#[tokio::test]
async fn partner_crud_with_validation() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    let r = app
        .send(bearer(app.post("/partner/products"), &p.admin).json(&json!({
            "name": "Protein Powder", "description": "Premium whey", "image": "https://example.com/p.jpg",
            "price": "29.9", "currency": "EUR", "externalUrl": "https://shop.example.com/protein",
            "productType": "Supplements", "featured": true, "status": "active", "sortOrder": 2
        })))
        .await;
    r.assert_status(201);
    let d = &r.body["data"];
    assert_eq!(d["price"], "29.90");
    assert_eq!(d["currency"], "EUR");
    let id = d["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.header("location"),
        Some(format!("/partner/products/{id}").as_str())
    );
    // Defaults.
    let r = app
        .send(bearer(app.post("/partner/products"), &p.admin).json(&json!({"name": "Mat"})))
        .await;
    r.assert_status(201);
    assert_eq!(r.body["data"]["status"], "draft");
    assert_eq!(r.body["data"]["currency"], "USD");
    assert_eq!(r.body["data"]["featured"], false);
    assert_eq!(r.body["data"]["price"], serde_json::Value::Null);
    // Partial update and clearing a field.
    let r = app
        .send(
            bearer(app.put(&format!("/partner/products/{id}")), &p.admin)
                .json(&json!({"price": null, "name": "Whey"})),
        )
        .await;
    r.assert_status(200);
    assert_eq!(r.body["data"]["name"], "Whey");
    assert_eq!(r.body["data"]["price"], serde_json::Value::Null);
    assert_eq!(r.body["data"]["productType"], "Supplements");
    // Invalid bodies change nothing.
    for body in [
        json!({"price": "1.234"}),
        json!({"price": 12}),
        json!({"currency": "eur"}),
        json!({"image": "ftp://x.example/a.png"}),
        json!({"externalUrl": "javascript:alert(1)"}),
        json!({"status": "published"}),
        json!({"name": ""}),
        json!({"sortOrder": "first"}),
        json!({"unknown": 1}),
        json!({}),
    ] {
        app.send(bearer(app.put(&format!("/partner/products/{id}")), &p.admin).json(&body))
            .await
            .assert_error(400, "VALIDATION_ERROR");
    }
    let r = app
        .send(bearer(
            app.get(&format!("/partner/products/{id}")),
            &p.viewer,
        ))
        .await;
    assert_eq!(r.body["data"]["name"], "Whey");
    app.send(
        bearer(app.post("/partner/products"), &p.admin).json(&json!({"description": "no name"})),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR");
    // Viewer cannot write.
    app.send(bearer(
        app.delete(&format!("/partner/products/{id}")),
        &p.viewer,
    ))
    .await
    .assert_error(403, "FORBIDDEN");
    app.send(bearer(
        app.delete(&format!("/partner/products/{id}")),
        &p.admin,
    ))
    .await
    .assert_status(200);
    app.send(bearer(
        app.get(&format!("/partner/products/{id}")),
        &p.admin,
    ))
    .await
    .assert_error(404, "NOT_FOUND");
    app.send(bearer(
        app.delete(&format!("/partner/products/{id}")),
        &p.admin,
    ))
    .await
    .assert_error(404, "NOT_FOUND");
    let audited = app
        .count(
            "SELECT count(*) FROM audit_log WHERE client_id = $1 AND action LIKE 'products.%'",
            p.t.client_id,
        )
        .await;
    assert_eq!(audited, 4);
}

#[tokio::test]
async fn lists_filter_and_sort_and_the_app_sees_active_products_only() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    for (name, price, status, ptype, order) in [
        ("Alpha", "10.00", "active", "Apparel", 3),
        ("Bravo", "5.50", "active", "Supplements", 1),
        ("Charlie", "99.99", "draft", "Apparel", 2),
        ("Delta", "20", "archived", "Apparel", 0),
        ("Echo", "1", "active", "Apparel", 5),
    ] {
        app.send(bearer(app.post("/partner/products"), &p.admin).json(&json!({
            "name": name, "price": price, "status": status, "productType": ptype, "sortOrder": order,
            "description": format!("{name} description")
        })))
        .await
        .assert_status(201);
    }
    let names = |r: &portal_tests::Resp| -> Vec<String> {
        r.body["data"]["products"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_string())
            .collect()
    };
    let list = |q: &str| app.send(bearer(app.get(&format!("/partner/products{q}")), &p.admin));
    assert_eq!(
        names(&list("").await),
        vec!["Delta", "Bravo", "Charlie", "Alpha", "Echo"]
    );
    assert_eq!(
        names(&list("?sort=price_desc").await),
        vec!["Charlie", "Delta", "Alpha", "Bravo", "Echo"]
    );
    assert_eq!(
        names(&list("?sort=price_asc&status=active").await),
        vec!["Echo", "Bravo", "Alpha"]
    );
    assert_eq!(
        names(&list("?productType=apparel&sort=oldest").await),
        vec!["Alpha", "Charlie", "Delta", "Echo"]
    );
    assert_eq!(names(&list("?search=CHAR").await), vec!["Charlie"]);
    assert_eq!(
        names(&list("?sort=newest&limit=2").await),
        vec!["Echo", "Delta"]
    );
    for bad in [
        "?limit=51",
        "?sort=price",
        "?status=live",
        "?featured=maybe",
    ] {
        list(bad).await.assert_error(400, "VALIDATION_ERROR");
    }
    // The app: active only, the key's client only.
    let r = app
        .send(key(app.get("/products?sort=price_asc"), &p.t.api_key))
        .await;
    r.assert_status(200);
    assert_eq!(names(&r), vec!["Echo", "Bravo", "Alpha"]);
    let r = app
        .send(key(app.get("/products/types"), &p.t.api_key))
        .await;
    assert_eq!(
        r.body["data"],
        json!([{"productType": "Apparel", "count": 2}, {"productType": "Supplements", "count": 1}])
    );
    let draft = list("?status=draft").await.body["data"]["products"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.send(key(app.get(&format!("/products/{draft}")), &p.t.api_key))
        .await
        .assert_error(404, "NOT_FOUND");
    let other = app.partner().await;
    let r = app.send(key(app.get("/products"), &other.t.api_key)).await;
    assert_eq!(r.body["data"]["pagination"]["total"], 0);
}
