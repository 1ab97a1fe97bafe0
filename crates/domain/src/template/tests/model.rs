//! Meta's JSON in and out.

use super::*;
use serde_json::json;

#[test]
fn meta_openapi_examples_validate_and_round_trip() {
    // Create examples and a list answer of Meta's OpenAPI document, verbatim.
    let examples = [
        json!({"category":"UTILITY","components":[{"example":{"header_handle":["4::YXBwbGljYXRpb24vcGRm:ARZVv4zuogJMxmAdS3_6T4o_K4ll2806avA7rWpikisTzYPsXXUeKk0REjS-hIM1rYrizHD7rQXj951TKgUFblgd_BDWVROCwRkg9Vhjj-cHNQ:e:1681237341:634974688087057:100089620928913:ARa1ZDhwbLZM3EENeeg"]},"format":"DOCUMENT","type":"HEADER"},{"example":{"body_text":[["Mark","860198-230332"]]},"text":"Thank you for your order, {{1}}! Your order number is {{2}}. Tap the PDF linked above to view your receipt. If you have any questions, please use the buttons below to contact support. Thanks again!","type":"BODY"},{"buttons":[{"phone_number":"16467043595","text":"Call","type":"PHONE_NUMBER"},{"text":"Contact Support","type":"URL","url":"https://www.examplesite.com/support"}],"type":"BUTTONS"}],"language":"en_US","name":"order_confirmation"}),
        json!({"category":"MARKETING","components":[{"example":{"header_handle":["4::aW1hZ2UvanBn:ARYytyb0kLp5htbBB8vWlclG5M9gMBxiEyt4FNCvrueWBOmFmRAztEuNtPGUnEC22Etc_SAAVU0YJOk3B7A-JuR1241_nq7gfITFxXKdDGnfvw:e:1681000441:634974688087057:100089620928913:ARbB4l0IPRncfMF-1sE"]},"format":"IMAGE","type":"HEADER"},{"example":{"body_text":[["Mark","Tuscan Getaway package","800"]]},"text":"Hi {{1}}! For a limited time only you can get our {{2}} for as low as {{3}}. Tap the Offer Details button for more information.","type":"BODY"},{"text":"Offer valid until May 31, 2023","type":"FOOTER"},{"buttons":[{"phone_number":"16467043595","text":"Call","type":"PHONE_NUMBER"},{"example":["summer2023"],"text":"Shop Now","type":"URL","url":"https://damp-sea-63235.herokuapp.com/shop?promo={{1}}"}],"type":"BUTTONS"}],"language":"en_US","name":"limited_time_offer_tuscan_getaway_2023"}),
        json!({"category":"UTILITY","components":[{"format":"LOCATION","type":"HEADER"},{"example":{"body_text":[["Mark","566701"]]},"text":"Good news {{1}}! Your order #{{2}} is on its way to the location above. Thank you for your order!","type":"BODY"},{"text":"To stop receiving delivery updates, tap the button below.","type":"FOOTER"},{"buttons":[{"text":"Stop Delivery Updates","type":"QUICK_REPLY"}],"type":"BUTTONS"}],"language":"en_US","name":"order_delivery_update"}),
        json!({"category":"MARKETING","components":[{"example":{"header_text":["Summer Sale"]},"format":"TEXT","text":"Our {{1}} is on!","type":"HEADER"},{"example":{"body_text":[["the end of August","25OFF","25%"]]},"text":"Shop now through {{1}} and use code {{2}} to get {{3}} off of all merchandise.","type":"BODY"},{"text":"Use the buttons below to manage your marketing subscriptions","type":"FOOTER"},{"buttons":[{"text":"Unsubcribe from Promos","type":"QUICK_REPLY"},{"text":"Unsubscribe from All","type":"QUICK_REPLY"}],"type":"BUTTONS"}],"language":"en","name":"seasonal_promotion_text_only"}),
        json!({"category":"MARKETING","components":[{"example":{"header_text":["Pablo"]},"format":"TEXT","text":"Forget something {{1}}?","type":"HEADER"},{"example":{"body_text":[["10OFF"]]},"text":"Looks like you left some items in your cart! Use code {{1}} and you can get 10% off of all of them!","type":"BODY"},{"buttons":[{"text":"View items","type":"MPM"}],"type":"BUTTONS"}],"language":"en_US","name":"abandoned_cart"}),
        json!({"category":"AUTHENTICATION","components":[{"add_security_recommendation":true,"type":"BODY"},{"code_expiration_minutes":10,"type":"FOOTER"},{"buttons":[{"autofill_text":"Autofill","otp_type":"ONE_TAP","package_name":"com.example.luckyshrub","signature_hash":"K8a%2FAINcGX7","text":"Copy Code","type":"OTP"}],"type":"BUTTONS"}],"language":"en_US","name":"authentication_code_autofill_button"}),
        json!({"category":"MARKETING","components":[{"format":"TEXT","text":"Fall Sale","type":"HEADER"},{"example":{"body_text":[["Mark","FALL25"]]},"text":"Hi {{1}}, our Fall Sale is on! Use promo code {{2}} Get an extra 25% off every order above $350!","type":"BODY"},{"text":"Not interested in any of our sales? Tap Stop Promotions","type":"FOOTER"},{"buttons":[{"text":"Stop promotions","type":"QUICK_REPLY"}],"type":"BUTTONS"}],"id":"920070352646140","language":"en_US","name":"2023_april_promo","status":"APPROVED","parameter_format":"POSITIONAL"}),
    ];
    for ex in examples {
        let d = def(&ex);
        assert_eq!(validate(&d), vec![], "{}", d.name);
        let mut back = serde_json::to_value(&d).expect("serializes");
        // Meta's default is written out explicitly; everything else is as received.
        if ex.get("parameter_format").is_none() {
            back.as_object_mut().map(|o| o.remove("parameter_format"));
        }
        assert_eq!(back, ex, "{}", d.name);
    }
}

#[test]
fn unknown_fields_and_kinds_survive() {
    let mut v = base();
    components(&mut v)
        .push(json!({"type": "LIMITED_TIME_OFFER", "limited_time_offer": {"text": "x"}}));
    buttons(&mut v)
        .push(json!({"type": "VOICE_CALL", "text": "Ligar pelo WhatsApp", "ttl_minutes": 5}));
    v["components"][1]["future_flag"] = json!(true);
    v["quality_score"] = json!({"score": "GREEN"});
    let d = def(&v);
    assert!(matches!(d.components[4], Component::Other(_)));
    assert_eq!(d.buttons()[3].kind(), "VOICE_CALL");
    assert_eq!(serde_json::to_value(&d).unwrap(), v);
    // Lowercase types from some Meta examples parse as the known kind.
    let lower: Component = serde_json::from_value(json!({"type": "body", "text": "Oi"})).unwrap();
    assert!(matches!(lower, Component::Body(_)));
    assert!(serde_json::from_value::<Component>(json!({"text": "sem tipo"})).is_err());
}
